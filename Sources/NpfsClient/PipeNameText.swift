/// A pipe's name, which is bytes, as text for people and JSON: valid UTF-8 as it is, a
/// backslash as `\\`, and every other byte (invalid UTF-8, control characters) as `\xNN`.
package enum PipeNameText {
    package static func display(_ name: [UInt8]) -> String {
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
