import PipeCore
import SystemPackage

/// A reply to a waiting request of another host, as the mailbox keeps it.
extension PipeReply {
    var encoded: [UInt8] {
        var writer = StateWriter()
        switch self {
        case .opened(let handle):
            writer.put(UInt8(0))
            writer.put(handle.rawValue)
        case .data(let bytes):
            writer.put(UInt8(1))
            writer.put(bytes: bytes)
        case .written(let count):
            writer.put(UInt8(2))
            writer.put(count)
        case .failed(let error):
            writer.put(UInt8(3))
            writer.put(UInt32(bitPattern: error.rawValue))
        }
        return writer.bytes
    }

    init(decoding bytes: [UInt8]) throws(StateDecodingError) {
        var reader = StateReader(bytes)
        switch try reader.uint8() {
        case 0: self = .opened(PipeHandle(rawValue: try reader.uint64()))
        case 1: self = .data(try reader.bytes())
        case 2: self = .written(try reader.count(atMost: Int(Int32.max)))
        default: self = .failed(Errno(rawValue: Int32(bitPattern: try reader.uint32())))
        }
    }
}
