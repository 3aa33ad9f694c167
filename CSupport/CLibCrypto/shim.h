// OpenSSL's EVP digest interface: SHA-1 for v1 pieces, SHA-256 for v2 merkle trees; and its big
// numbers, for the Diffie-Hellman exchange of BitTorrent's protocol encryption (MSE).
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/bn.h>
