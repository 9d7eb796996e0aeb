/// A soak record: at most 4096 bytes (PIPE_BUF), so each write(2) of one is atomic and
/// never interleaved with another writer's. Its payload follows from its header, so the
/// checker needs nothing but the bytes a reader got.
///
/// Layout (little-endian): magic "NPRC", length (u32, whole record), writer slot (u32),
/// incarnation (u32), sequence (u64), checksum (u32, FNV-1a of the rest), payload.
struct Record: Equatable {
    static let magic: UInt32 = 0x4352_504E   // "NPRC"
    static let headerSize = 28
    static let maximumSize = 4096

    var slot: UInt32
    var incarnation: UInt32
    var sequence: UInt64
    var length: Int

    /// The record's bytes.
    func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: length)
        put(Record.magic, at: 0, in: &bytes)
        put(UInt32(length), at: 4, in: &bytes)
        put(slot, at: 8, in: &bytes)
        put(incarnation, at: 12, in: &bytes)
        put(UInt32(truncatingIfNeeded: sequence), at: 16, in: &bytes)
        put(UInt32(truncatingIfNeeded: sequence >> 32), at: 20, in: &bytes)
        var state = sequence &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(slot) << 32 ^ UInt64(incarnation)
        for index in Record.headerSize..<length {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            bytes[index] = UInt8(truncatingIfNeeded: state)
        }
        put(Record.checksum(bytes), at: 24, in: &bytes)
        return bytes
    }

    /// FNV-1a of everything but the checksum field.
    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var hash: UInt32 = 2_166_136_261
        for (index, byte) in bytes.enumerated() where !(24..<28).contains(index) {
            hash = (hash ^ UInt32(byte)) &* 16_777_619
        }
        return hash
    }

    /// Parses a stream of whole records; stops at the first that is torn or corrupt and
    /// says where.
    static func parse(_ stream: [UInt8]) -> (records: [Record], problem: String?) {
        var records: [Record] = []
        var offset = 0
        while offset < stream.count {
            guard stream.count - offset >= headerSize else { return (records, "a torn record at byte \(offset)") }
            guard get(stream, offset) == magic else { return (records, "no record at byte \(offset)") }
            let length = Int(get(stream, offset + 4))
            guard (headerSize...maximumSize).contains(length) else { return (records, "a bad length at byte \(offset)") }
            guard offset + length <= stream.count else { return (records, "a torn record at byte \(offset)") }
            let bytes = Array(stream[offset..<(offset + length)])
            let record = Record(slot: get(bytes, 8), incarnation: get(bytes, 12),
                                sequence: UInt64(get(bytes, 16)) | UInt64(get(bytes, 20)) << 32, length: length)
            guard record.encoded() == bytes else { return (records, "corrupt bytes in the record at byte \(offset)") }
            records.append(record)
            offset += length
        }
        return (records, nil)
    }

    private func put(_ value: UInt32, at offset: Int, in bytes: inout [UInt8]) {
        for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }

    private static func get(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
    }
}
