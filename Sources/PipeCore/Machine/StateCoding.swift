/// A machine's state as bytes, for an executor that keeps it outside this process (a row
/// in PostgreSQL): fixed-width little-endian numbers and length-prefixed byte strings, in
/// the order each type writes them. Each type encodes itself next to its own fields
/// (`encode(into:)`, `init(decoding:)`); a version byte leads the whole.
package struct StateWriter: ~Copyable {
    package private(set) var bytes: [UInt8] = []

    package init() {}

    package mutating func put(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    package mutating func put(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    package mutating func put(_ value: UInt8) { bytes.append(value) }
    package mutating func put(_ value: Int) { put(UInt64(bitPattern: Int64(value))) }
    package mutating func put(_ value: Bool) { bytes.append(value ? 1 : 0) }
    package mutating func put(_ value: Double) { put(value.bitPattern) }
    package mutating func put(bytes value: UnsafeRawBufferPointer) {
        put(value.count)
        bytes.append(contentsOf: value)
    }
    /// Bytes without their length (the reader must know it).
    package mutating func append(_ value: UnsafeRawBufferPointer) { bytes.append(contentsOf: value) }
    package mutating func put(bytes value: [UInt8]) { value.withUnsafeBytes { put(bytes: $0) } }
    package mutating func put<Value: RawRepresentable>(_ value: Value) where Value.RawValue == String {
        put(bytes: Array(value.rawValue.utf8))
    }
}

/// Reads what a `StateWriter` wrote. Never traps: anything short, out of range or unknown
/// throws `StateDecodingError`, since the bytes come from outside this process.
package struct StateReader: ~Copyable {
    private let bytes: [UInt8]
    private var offset = 0

    package init(_ bytes: [UInt8]) { self.bytes = bytes }

    package var isAtEnd: Bool { offset == bytes.count }

    private mutating func take(_ count: Int) throws(StateDecodingError) -> ArraySlice<UInt8> {
        guard count >= 0, count <= bytes.count - offset else { throw StateDecodingError("truncated state") }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    package mutating func uint64() throws(StateDecodingError) -> UInt64 {
        try take(8).reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }
    package mutating func uint32() throws(StateDecodingError) -> UInt32 {
        try take(4).reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }
    package mutating func uint8() throws(StateDecodingError) -> UInt8 { try take(1).first ?? 0 }
    package mutating func int() throws(StateDecodingError) -> Int { Int(truncatingIfNeeded: Int64(bitPattern: try uint64())) }
    /// A count or size: from 0 to `limit`.
    package mutating func count(atMost limit: Int) throws(StateDecodingError) -> Int {
        let value = try int()
        guard (0...limit).contains(value) else { throw StateDecodingError("count \(value) out of range") }
        return value
    }
    package mutating func bool() throws(StateDecodingError) -> Bool {
        switch try uint8() {
        case 0: return false
        case 1: return true
        default: throw StateDecodingError("bad flag")
        }
    }
    package mutating func double() throws(StateDecodingError) -> Double { Double(bitPattern: try uint64()) }
    package mutating func bytes(atMost limit: Int = Int(Int32.max)) throws(StateDecodingError) -> [UInt8] {
        Array(try take(try count(atMost: limit)))
    }
    /// `count` bytes that were appended without their length.
    package mutating func raw(_ count: Int) throws(StateDecodingError) -> [UInt8] { Array(try take(count)) }
    package mutating func choice<Value: RawRepresentable>(_ type: Value.Type) throws(StateDecodingError) -> Value
    where Value.RawValue == String {
        let text = String(decoding: try bytes(atMost: 64), as: UTF8.self)
        guard let value = Value(rawValue: text) else { throw StateDecodingError("unknown \(Value.self) '\(text)'") }
        return value
    }
}

package struct StateDecodingError: Error, CustomStringConvertible, Equatable {
    package let description: String
    init(_ description: String) { self.description = description }
}
