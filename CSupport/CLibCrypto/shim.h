// OpenSSL's EVP digest interface: SHA-1 for v1 pieces, SHA-256 for v2 merkle trees.
#include <openssl/evp.h>
#include <openssl/crypto.h>
