//! WASI error numbers in plugin messages, made readable. A guest's "(os error 44)" counts in
//! WASI's numbering, not the host's (44 is ENOENT there, ECHRNG on Linux), and wasi-libc reports
//! every failed stream write as EIO, so a full disk reads "I/O error (os error 29)".
//!
//! Invariant: the plugin's own words are kept; the host only names the number and, for an I/O
//! error, adds what it can see itself (a full disk under one of the node's writable grants).

use std::path::PathBuf;

/// WASI preview-1 errno names, by number (wasi-libc's `errno.h`): what guests print.
const NAMES: &[&str] = &[
    "ESUCCESS",
    "E2BIG",
    "EACCES",
    "EADDRINUSE",
    "EADDRNOTAVAIL",
    "EAFNOSUPPORT",
    "EAGAIN",
    "EALREADY",
    "EBADF",
    "EBADMSG",
    "EBUSY",
    "ECANCELED",
    "ECHILD",
    "ECONNABORTED",
    "ECONNREFUSED",
    "ECONNRESET",
    "EDEADLK",
    "EDESTADDRREQ",
    "EDOM",
    "EDQUOT",
    "EEXIST",
    "EFAULT",
    "EFBIG",
    "EHOSTUNREACH",
    "EIDRM",
    "EILSEQ",
    "EINPROGRESS",
    "EINTR",
    "EINVAL",
    "EIO",
    "EISCONN",
    "EISDIR",
    "ELOOP",
    "EMFILE",
    "EMLINK",
    "EMSGSIZE",
    "EMULTIHOP",
    "ENAMETOOLONG",
    "ENETDOWN",
    "ENETRESET",
    "ENETUNREACH",
    "ENFILE",
    "ENOBUFS",
    "ENODEV",
    "ENOENT",
    "ENOEXEC",
    "ENOLCK",
    "ENOLINK",
    "ENOMEM",
    "ENOMSG",
    "ENOPROTOOPT",
    "ENOSPC",
    "ENOSYS",
    "ENOTCONN",
    "ENOTDIR",
    "ENOTEMPTY",
    "ENOTRECOVERABLE",
    "ENOTSOCK",
    "ENOTSUP",
    "ENOTTY",
    "ENXIO",
    "EOVERFLOW",
    "EOWNERDEAD",
    "EPERM",
    "EPIPE",
    "EPROTO",
    "EPROTONOSUPPORT",
    "EPROTOTYPE",
    "ERANGE",
    "EROFS",
    "ESPIPE",
    "ESRCH",
    "ESTALE",
    "ETIMEDOUT",
    "ETXTBSY",
    "EXDEV",
    "ENOTCAPABLE",
];

const EIO: usize = 29;
const ENOSPC: usize = 51;

/// Below this many free bytes a disk counts as full (a write of one buffer no longer fits).
const FULL_BELOW: u64 = 1 << 20;

/// Whether `message` (a guest's own words) reports an operating-system error: a file, directory
/// or socket it could not use, as Rust's and wasi-libc's messages say "(os error N)".
pub fn reports_os_error(message: &str) -> bool {
    let number_then = |marker: &str, close: char| {
        message.split(marker).skip(1).any(|after| {
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            digits > 0 && after[digits..].starts_with(close)
        })
    };
    // Rust's "(os error 44)"; Python's OSError "[Errno 2] No such file or directory".
    number_then("(os error ", ')') || number_then("[Errno ", ']')
}

/// `message` with each "(os error N)" named as the WASI errno it is, and, when it reports an
/// I/O error or no space, the writable grants whose disk is full.
pub fn explain(message: &str, writable: &[PathBuf]) -> String {
    const OPEN: &str = "(os error ";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    let mut io_error = false;
    while let Some(at) = rest.find(OPEN) {
        let after = &rest[at + OPEN.len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let number = after[..digits].parse::<usize>().ok();
        match (number, after[digits..].starts_with(')')) {
            (Some(n), true) => {
                out.push_str(&rest[..at]);
                match NAMES.get(n) {
                    Some(name) => out.push_str(&format!("(WASI {name})")),
                    None => out.push_str(&format!("(WASI errno {n})")),
                }
                io_error |= n == EIO || n == ENOSPC;
                rest = &after[digits + 1..];
            }
            _ => {
                out.push_str(&rest[..at + OPEN.len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    if io_error {
        for dir in writable {
            if let Some(free) = free_bytes(dir)
                && free < FULL_BELOW
            {
                out.push_str(&format!(
                    "; the disk holding {} is full ({free} bytes free): free some space, then run again (the job resumes from its last checkpoint)",
                    dir.display()
                ));
            }
        }
    }
    out
}

/// Bytes an unprivileged writer may still use on the file system holding `dir`.
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasi_numbers_are_named() {
        assert_eq!(
            explain("No such file or directory (os error 44)", &[]),
            "No such file or directory (WASI ENOENT)"
        );
        assert_eq!(
            explain("a (os error 63) b (os error 999) (os error x", &[]),
            "a (WASI EPERM) b (WASI errno 999) (os error x"
        );
        assert_eq!(NAMES[ENOSPC], "ENOSPC");
        assert_eq!(NAMES[EIO], "EIO");
        assert_eq!(NAMES[76], "ENOTCAPABLE");
        assert!(reports_os_error("gone (os error 44)"));
        assert!(!reports_os_error("bad state (os error x)"));
        assert!(!reports_os_error("no number (os error )"));
        assert!(reports_os_error(
            "FileNotFoundError: [Errno 44] No such file or directory: 'x'"
        ));
    }

    #[test]
    fn an_io_error_with_room_on_the_disk_says_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let text = explain("I/O error (os error 29)", &[dir.path().to_owned()]);
        assert_eq!(text, "I/O error (WASI EIO)");
    }
}
