/// BEP 42: what our external address is, decided from the `ip` that answering nodes report. One node
/// cannot be trusted, so each responder's /24 (or IPv6 /48) casts one vote, the latest of at most
/// `maxVoters` are kept, and an address wins only with `minimumAgreeingVotes` that outnumber all others.
///
/// Private addresses are answers only a node on the same private network gives; they count only while
/// no public address has any vote (a LAN-only swarm, as in the lab tests). Unroutable answers (0/8,
/// multicast and reserved) never count.
struct ExternalAddressVotes: Sendable {
    /// Distinct voting subnets an address needs before it is believed: 4.
    static let minimumAgreeingVotes = 4
    /// Voters remembered, at most; the oldest vote goes first: 64.
    static let maxVoters = 64

    private struct Vote: Sendable {
        var voterSubnet: DHTIPAddress
        var reported: DHTIPAddress
    }

    /// Oldest first.
    private var votes: [Vote] = []

    /// Counts `reported` as what the node at `voter` sees us as, replacing that subnet's earlier vote.
    mutating func record(_ reported: DHTIPAddress, from voter: DHTIPAddress) {
        guard reported.family == voter.family, !reported.isUnroutable else { return }
        let subnet = Self.votingSubnet(of: voter)
        votes.removeAll { $0.voterSubnet == subnet }
        if votes.count >= Self.maxVoters { votes.removeFirst() }
        votes.append(Vote(voterSubnet: subnet, reported: reported))
    }

    /// An IPv6 voter's /48, a site's usual allocation: one holder of a /48 has 65,536 /64s, enough to
    /// outvote everyone (and take our id from us) if each counted.
    private static func votingSubnet(of voter: DHTIPAddress) -> DHTIPAddress {
        switch voter {
        case .v4: voter.subnet
        case .v6(let high, _): .v6(high: high & 0xffff_ffff_ffff_0000, low: 0)
        }
    }

    /// The address enough voters agree on, or nil.
    var decided: DHTIPAddress? {
        let hasPublicVotes = votes.contains { !$0.reported.isLocal }
        var tally: [DHTIPAddress: Int] = [:]
        for vote in votes where !hasPublicVotes || !vote.reported.isLocal {
            tally[vote.reported, default: 0] += 1
        }
        let total = tally.values.reduce(0, +)
        guard let (address, count) = tally.max(by: { $0.value < $1.value }),
            count >= Self.minimumAgreeingVotes, count * 2 > total
        else { return nil }
        return address
    }
}

extension DHTIPAddress {
    /// Addresses no node can have on the internet: IPv4 0/8, multicast and reserved (224/3); IPv6
    /// unspecified and multicast.
    var isUnroutable: Bool {
        switch self {
        case .v4(let value): value >> 24 == 0 || value >> 29 == 0b111
        case .v6(let high, let low): (high == 0 && low == 0) || high >> 56 == 0xff
        }
    }
}
