import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif

/// Writes to stdout or stderr at once, past `print`'s buffer, so what a command writes there
/// keeps its order with what it reports on the other stream.
enum StandardStream {
    /// False when not everything could be written: the reader is gone (`berth logs 7 | head`)
    /// or the stream broke.
    @discardableResult
    static func write(_ bytes: some Collection<UInt8>, to descriptor: Int32 = STDOUT_FILENO) -> Bool {
        // From the collection's own storage where it has one (a string's UTF-8, `Data`, an
        // array), as `berth logs --follow` writes every piece it gets; copied first otherwise.
        if let written = bytes.withContiguousStorageIfAvailable({ writeAll(UnsafeRawBufferPointer($0), to: descriptor) }) {
            return written
        }
        return Array(bytes).withUnsafeBytes { writeAll($0, to: descriptor) }
    }

    private static func writeAll(_ raw: UnsafeRawBufferPointer, to descriptor: Int32) -> Bool {
        var sent = 0
        while sent < raw.count {
            let count = Glibc.write(descriptor, raw.baseAddress! + sent, raw.count - sent)
            if count < 0 {
                if errno == EINTR { continue }
                return false
            }
            sent += count
        }
        return true
    }

    @discardableResult
    static func write(_ text: String, to descriptor: Int32 = STDOUT_FILENO) -> Bool {
        write(text.utf8, to: descriptor)
    }
}

/// Why a file the user named could not be read or written, in a few words.
enum FileProblem {
    static func reason(_ error: any Error) -> String {
        switch (error as? CocoaError)?.code {
        case .fileReadNoSuchFile?, .fileNoSuchFile?: return "no such file"
        case .fileReadNoPermission?, .fileWriteNoPermission?: return "permission denied"
        case .fileWriteOutOfSpace?: return "no space left on the device"
        default: break
        }
        if let posix = (error as? CocoaError)?.underlying as? POSIXError ?? error as? POSIXError {
            return String(cString: strerror(posix.code.rawValue))
        }
        return "\(error)"
    }
}
