//! What crosses the boundary: errors and buffers the library allocates, the conversion of
//! C arguments, and the guard that keeps panics on the Rust side.

use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use pitaya_core::Error;

/// An error returned by the library: a Pitaya code (`PIT-404`, `PIT-500`, an
/// application's own code), a message and the metadata as a JSON object of strings
/// (`{}` when there is none). Every string is NUL-terminated UTF-8 and never NULL.
///
/// Ownership: the caller owns a returned `PitayaError *` and frees it, once, with
/// `pitaya_error_free`; it stays valid until then, on any thread.
#[repr(C)]
pub struct PitayaError {
    /// The code, e.g. `PIT-500`.
    pub code: *mut c_char,
    /// The message.
    pub message: *mut c_char,
    /// The metadata, a JSON object of strings.
    pub metadata_json: *mut c_char,
}

/// Bytes allocated by the library (a reply, a list of uids as JSON).
///
/// Ownership: the caller owns the bytes once a function has filled a `PitayaBuffer` and
/// frees them, once, with `pitaya_buffer_free` (any thread). `data` is NULL when `len`
/// is 0; freeing an empty buffer is allowed and does nothing.
#[repr(C)]
pub struct PitayaBuffer {
    /// The first byte, or NULL when `len` is 0.
    pub data: *mut u8,
    /// The number of bytes.
    pub len: usize,
}

impl PitayaBuffer {
    pub(crate) const EMPTY: PitayaBuffer = PitayaBuffer { data: std::ptr::null_mut(), len: 0 };

    pub(crate) fn from_vec(bytes: Vec<u8>) -> Self {
        if bytes.is_empty() {
            return Self::EMPTY;
        }
        let len = bytes.len();
        let data = Box::into_raw(bytes.into_boxed_slice()).cast::<u8>();
        PitayaBuffer { data, len }
    }
}

/// Frees the bytes of `buffer` and sets it to the empty buffer, so that a second call
/// does nothing. `buffer` may be NULL.
///
/// # Safety
/// `buffer` is NULL or points to a `PitayaBuffer` the library filled and nobody changed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_buffer_free(buffer: *mut PitayaBuffer) {
    guard((), || {
        // SAFETY: the caller passes NULL or a valid, exclusive PitayaBuffer.
        let Some(buffer) = (unsafe { buffer.as_mut() }) else { return };
        if !buffer.data.is_null() {
            let slice = std::ptr::slice_from_raw_parts_mut(buffer.data, buffer.len);
            // SAFETY: data and len come from `PitayaBuffer::from_vec`, a boxed slice of
            // exactly len bytes that was not freed (it is reset below).
            drop(unsafe { Box::from_raw(slice) });
        }
        *buffer = PitayaBuffer::EMPTY;
    });
}

/// Frees an error returned by the library. `error` may be NULL.
///
/// # Safety
/// `error` is NULL or a `PitayaError *` the library returned and that was not freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pitaya_error_free(error: *mut PitayaError) {
    guard((), || {
        if error.is_null() {
            return;
        }
        // SAFETY: the library made `error` with Box::into_raw (see `error_ptr`) and the
        // caller gives it back once.
        let error = unsafe { Box::from_raw(error) };
        for s in [error.code, error.message, error.metadata_json] {
            // SAFETY: each string came from CString::into_raw in `error_ptr`.
            drop(unsafe { CString::from_raw(s) });
        }
    });
}

/// A C string for `s`; NUL bytes, which C strings cannot hold, become U+FFFD.
pub(crate) fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\u{FFFD}")).unwrap_or_default()
}

/// `error` as a `PitayaError *` the caller owns.
pub(crate) fn error_ptr(error: &Error) -> *mut PitayaError {
    let metadata = serde_json::to_string(error.metadata()).unwrap_or_else(|_| "{}".to_owned());
    Box::into_raw(Box::new(PitayaError {
        code: c_string(error.code()).into_raw(),
        message: c_string(error.message()).into_raw(),
        metadata_json: c_string(&metadata).into_raw(),
    }))
}

/// Runs `f`, returning `default` if it panics: no panic unwinds into C.
pub(crate) fn guard<T>(default: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(default)
}

/// Runs `f` for an exported function that returns `PitayaError *`: NULL on success, the
/// error otherwise, `PIT-500` when `f` panicked.
pub(crate) fn guard_err(f: impl FnOnce() -> Result<(), Error>) -> *mut PitayaError {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => std::ptr::null_mut(),
        Ok(Err(e)) => error_ptr(&e),
        Err(panic) => error_ptr(&Error::internal(format!(
            "panic in pitaya-ffi: {}",
            panic_message(panic.as_ref())
        ))),
    }
}

/// The text of a caught panic.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// The argument `what` as a `&str`.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that stays valid and unchanged for `'a`.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(Error::bad_request(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL, and the caller promises a NUL-terminated string living for 'a.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().map_err(|_| Error::bad_request(format!("{what} is not UTF-8")))
}

/// The optional argument `what`: `None` for NULL.
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(
    p: *const c_char,
    what: &str,
) -> Result<Option<&'a str>, Error> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded from the caller.
    unsafe { str_arg(p, what) }.map(Some)
}

/// The `len` bytes at `data`; NULL is allowed only with `len` 0.
///
/// # Safety
/// `data` is NULL or points to `len` readable bytes that stay unchanged for `'a`.
pub(crate) unsafe fn bytes_arg<'a>(
    data: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], Error> {
    if len == 0 {
        return Ok(&[]);
    }
    if data.is_null() {
        return Err(Error::bad_request(format!("{what} is NULL with length {len}")));
    }
    // SAFETY: non-NULL with len readable bytes, as the caller promises.
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// The `n` strings at `uids`.
///
/// # Safety
/// `uids` is NULL (only with `n` 0) or points to `n` valid NUL-terminated strings.
pub(crate) unsafe fn strs_arg(
    uids: *const *const c_char,
    n: usize,
    what: &str,
) -> Result<Vec<String>, Error> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if uids.is_null() {
        return Err(Error::bad_request(format!("{what} is NULL with length {n}")));
    }
    // SAFETY: non-NULL with n readable pointers, as the caller promises.
    let ptrs = unsafe { std::slice::from_raw_parts(uids, n) };
    ptrs.iter()
        .map(|&p| {
            // SAFETY: each pointer is a valid C string, as the caller promises.
            unsafe { str_arg(p, what) }.map(str::to_owned)
        })
        .collect()
}

/// Writes `value` to the out parameter `out` when it is not NULL.
///
/// # Safety
/// `out` is NULL or valid for a write of a `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-NULL and writable, as the caller promises; the old value is not
        // read (it may be uninitialised).
        unsafe { out.write(value) };
    }
}

/// The list `uids` as a JSON array, for out parameters.
pub(crate) fn json_list(uids: &[String]) -> Vec<u8> {
    serde_json::to_vec(uids).unwrap_or_else(|_| b"[]".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_round_trip_through_c_strings() {
        let e = Error::new("PIT-499", "fa\0il").with_metadata("k", "v");
        let p = error_ptr(&e);
        // SAFETY: `p` was just made by `error_ptr`; its strings are valid C strings.
        unsafe {
            assert_eq!(CStr::from_ptr((*p).code).to_str().unwrap(), "PIT-499");
            assert_eq!(CStr::from_ptr((*p).message).to_str().unwrap(), "fa\u{FFFD}il");
            assert_eq!(CStr::from_ptr((*p).metadata_json).to_str().unwrap(), r#"{"k":"v"}"#);
            pitaya_error_free(p);
            pitaya_error_free(std::ptr::null_mut());
        }
    }

    #[test]
    fn buffers_are_freed_once() {
        let mut b = PitayaBuffer::from_vec(b"abc".to_vec());
        assert_eq!(b.len, 3);
        // SAFETY: `b` was filled by the library; the second call sees the empty buffer.
        unsafe {
            pitaya_buffer_free(&mut b);
            assert!(b.data.is_null() && b.len == 0);
            pitaya_buffer_free(&mut b);
        }
        assert!(PitayaBuffer::from_vec(Vec::new()).data.is_null());
    }

    #[test]
    fn panics_become_errors() {
        let p = guard_err(|| panic!("boom"));
        // SAFETY: a fresh error from `error_ptr`.
        unsafe {
            assert_eq!(CStr::from_ptr((*p).code).to_str().unwrap(), "PIT-500");
            assert!(CStr::from_ptr((*p).message).to_str().unwrap().contains("boom"));
            pitaya_error_free(p);
        }
    }

    #[test]
    fn bad_arguments_are_errors() {
        // SAFETY: NULL pointers only, which the functions check first.
        unsafe {
            assert!(str_arg(std::ptr::null(), "route").is_err());
            assert!(bytes_arg(std::ptr::null(), 3, "data").is_err());
            assert_eq!(bytes_arg(std::ptr::null(), 0, "data").unwrap(), b"");
            assert!(strs_arg(std::ptr::null(), 1, "uids").is_err());
        }
        let bad = [0xffu8, 0];
        // SAFETY: a NUL-terminated array.
        assert!(unsafe { str_arg(bad.as_ptr().cast(), "route") }.is_err());
    }
}
