import Glibc
import NpfsClient
import SystemPackage

// Extended attributes in the tests: through getfattr, as users read them, or through the
// client library's system calls, by bytes.

/// `getfattr --only-values`, the way users read an attribute.
func getfattr(_ path: String, _ name: String) throws -> String {
    let result = try ChildProcess.run(["getfattr", "--absolute-names", "--only-values", "-n", name, path], timeout: 5)
    guard result.status == 0 else { throw TestFailure("getfattr \(name): \(result.output)") }
    return result.output
}

/// An attribute's whole value.
func xattr(_ path: String, _ name: String) throws -> [UInt8] {
    do { return try ExtendedAttribute.get(Array(path.utf8), Array(name.utf8)) } catch {
        throw TestFailure("getxattr \(name): \(error)")
    }
}

/// 0 or the errno of getxattr(2) into a 256-byte buffer.
func getxattrErrno(_ path: String, _ name: String) -> Int32 {
    do { _ = try ExtendedAttribute.get(Array(path.utf8), Array(name.utf8), size: 256) } catch { return error.rawValue }
    return 0
}

/// 0 or the errno of setxattr(2).
func setxattrErrno(_ path: String, _ name: String, _ value: String) -> Int32 {
    rawSetxattr(Array(path.utf8), Array(name.utf8), Array(value.utf8))
}

/// 0 or the errno of removexattr(2).
func removexattrErrno(_ path: String, _ name: String) -> Int32 {
    do { try ExtendedAttribute.remove(Array(path.utf8), Array(name.utf8)) } catch { return error.rawValue }
    return 0
}

/// setxattr(2) with a path and name given as bytes; 0 or the errno.
func rawSetxattr(_ path: [UInt8], _ name: [UInt8], _ value: [UInt8]) -> Int32 {
    do { try ExtendedAttribute.set(path, name, value) } catch { return error.rawValue }
    return 0
}

/// getxattr(2) of a path given as bytes, into 256 bytes; the value, or nil with the errno in `errno`.
func rawGetxattr(_ path: [UInt8], _ name: String) -> String? {
    do { return String(decoding: try ExtendedAttribute.get(path, Array(name.utf8), size: 256), as: UTF8.self) } catch {
        errno = error.rawValue
        return nil
    }
}
