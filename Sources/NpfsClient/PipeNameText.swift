/// A pipe's name, which is bytes, as text for people and JSON: valid UTF-8 as it is, a
/// backslash as `\\`, and every other byte (invalid UTF-8, control characters) as `\xNN`.
/// `parse` reverses it, so a name `npfs status` shows can be given back to `npfs get`.
public enum PipeNameText {
    public static func display(_ name: [UInt8]) -> String {
        var text = ""
        var index = 0
        while index < name.count {
            let length = validSequenceLength(name, at: index)
            if length > 0 {
                let scalar = String(decoding: name[index..<(index + length)], as: UTF8.self)
                text += scalar == "\\" ? "\\\\" : scalar
                index += length
            } else {
                text += "\\x" + String(name[index], radix: 16, uppercase: false).leftPadded(to: 2)
                index += 1
            }
        }
        return text
    }

    /// The bytes a displayed name stands for; nil for a malformed escape.
    public static func parse(_ text: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        var rest = Array(text.utf8)[...]
        while let byte = rest.popFirst() {
            guard byte == UInt8(ascii: "\\") else { bytes.append(byte); continue }
            guard let next = rest.popFirst() else { return nil }
            if next == UInt8(ascii: "\\") { bytes.append(next); continue }
            guard next == UInt8(ascii: "x"), rest.count >= 2,
                  let value = UInt8(String(decoding: rest.prefix(2), as: UTF8.self), radix: 16) else { return nil }
            bytes.append(value)
            rest = rest.dropFirst(2)
        }
        return bytes
    }

    /// The length of the printable UTF-8 sequence at `index`, or 0 if the byte there must be escaped.
    private static func validSequenceLength(_ bytes: [UInt8], at index: Int) -> Int {
        let first = bytes[index]
        if first < 0x20 || first == 0x7F { return 0 }
        if first < 0x80 { return 1 }
        let length = first >= 0xF0 ? 4 : first >= 0xE0 ? 3 : first >= 0xC2 ? 2 : 0
        guard length > 0, index + length <= bytes.count else { return 0 }
        let sequence = Array(bytes[index..<(index + length)])
        // Decoding without repair tells whether the sequence is valid UTF-8.
        var iterator = sequence.makeIterator()
        var decoder = UTF8()
        guard case .scalarValue(let scalar) = decoder.decode(&iterator), iterator.next() == nil else { return 0 }
        return scalar.properties.generalCategory == .control ? 0 : length
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
