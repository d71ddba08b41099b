//! libvirt's C library, loaded with `dlopen` when an action first needs it.
//!
//! The agent binary does not link libvirt: `libvirt.so.0` pulls in some 56 shared libraries
//! whose loading and relocation cost 25–75 ms at every exec on this class of machine, more than
//! the whole monitor budget (see `docs/vm-monitor.md`). The monitor speaks to libvirtd through
//! [`crate::rpc`] and never maps the library; start, stop and validate-all load it here, once
//! per process. Only the few calls the agent makes are bound, with the signatures of libvirt's
//! public headers, which libvirt keeps stable across releases.

#![allow(unsafe_code, reason = "a foreign library loaded at run time")]

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void, CStr, CString};
use std::sync::OnceLock;

use libloading::Library;

/// The library's soname, as Debian's `libvirt0` installs it.
const SONAME: &str = "libvirt.so.0";

/// `virConnectPtr` and `virDomainPtr`: opaque handles.
pub type ConnectPtr = *mut c_void;
pub type DomainPtr = *mut c_void;

/// `virDomainJobInfo`, whose layout libvirt has kept since 0.7.7.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct JobInfo {
    pub kind: c_int,
    pub time_elapsed: c_ulonglong,
    pub time_remaining: c_ulonglong,
    pub data_total: c_ulonglong,
    pub data_processed: c_ulonglong,
    pub data_remaining: c_ulonglong,
    pub mem_total: c_ulonglong,
    pub mem_processed: c_ulonglong,
    pub mem_remaining: c_ulonglong,
    pub file_total: c_ulonglong,
    pub file_processed: c_ulonglong,
    pub file_remaining: c_ulonglong,
}

/// `VIR_ERR_NO_DOMAIN`.
pub const ERR_NO_DOMAIN: c_int = 42;

type ErrorFunc = Option<unsafe extern "C" fn(*mut c_void, *mut c_void)>;

/// The bound entry points; valid as long as the library stays loaded, which is forever.
#[derive(Debug)]
pub struct Api {
    _library: Library,
    connect_open: unsafe extern "C" fn(*const c_char) -> ConnectPtr,
    connect_close: unsafe extern "C" fn(ConnectPtr) -> c_int,
    lookup_by_name: unsafe extern "C" fn(ConnectPtr, *const c_char) -> DomainPtr,
    define_xml: unsafe extern "C" fn(ConnectPtr, *const c_char) -> DomainPtr,
    get_state: unsafe extern "C" fn(DomainPtr, *mut c_int, *mut c_int, c_uint) -> c_int,
    create: unsafe extern "C" fn(DomainPtr) -> c_int,
    resume: unsafe extern "C" fn(DomainPtr) -> c_int,
    managed_save: unsafe extern "C" fn(DomainPtr, c_uint) -> c_int,
    shutdown: unsafe extern "C" fn(DomainPtr) -> c_int,
    destroy: unsafe extern "C" fn(DomainPtr) -> c_int,
    job_info: unsafe extern "C" fn(DomainPtr, *mut JobInfo) -> c_int,
    abort_job: unsafe extern "C" fn(DomainPtr) -> c_int,
    free: unsafe extern "C" fn(DomainPtr) -> c_int,
    last_error_code: unsafe extern "C" fn() -> c_int,
    last_error_message: unsafe extern "C" fn() -> *const c_char,
    set_error_func: unsafe extern "C" fn(*mut c_void, ErrorFunc),
}

/// A failed libvirt call: its error code and message, read on the calling thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub code: i32,
    pub message: String,
}

/// libvirt prints every error to stderr unless a handler is set; ours drops them, since each
/// one is returned to the caller and reported there.
unsafe extern "C" fn ignore_error(_: *mut c_void, _: *mut c_void) {}

/// The library, loaded at the first call; the error says why it could not be.
pub fn api() -> Result<&'static Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Api, String> {
    // SAFETY: libvirt's initialisers only set up its own state; loading it has no other effect
    // on this process.
    let library = unsafe { Library::new(SONAME) }
        .map_err(|e| format!("cannot load {SONAME} (install libvirt0): {e}"))?;
    macro_rules! bind {
        ($name:literal) => {
            // SAFETY: the symbol is looked up by its C name and given the signature of
            // libvirt's public header; the pointer lives as long as `library`, kept in `Api`.
            *unsafe { library.get($name) }.map_err(|e| {
                format!(
                    "{SONAME} has no {}: {e}",
                    String::from_utf8_lossy($name.strip_suffix(b"\0").unwrap_or($name))
                )
            })?
        };
    }
    let api = Api {
        connect_open: bind!(b"virConnectOpen\0"),
        connect_close: bind!(b"virConnectClose\0"),
        lookup_by_name: bind!(b"virDomainLookupByName\0"),
        define_xml: bind!(b"virDomainDefineXML\0"),
        get_state: bind!(b"virDomainGetState\0"),
        create: bind!(b"virDomainCreate\0"),
        resume: bind!(b"virDomainResume\0"),
        managed_save: bind!(b"virDomainManagedSave\0"),
        shutdown: bind!(b"virDomainShutdown\0"),
        destroy: bind!(b"virDomainDestroy\0"),
        job_info: bind!(b"virDomainGetJobInfo\0"),
        abort_job: bind!(b"virDomainAbortJob\0"),
        free: bind!(b"virDomainFree\0"),
        last_error_code: bind!(b"virGetLastErrorCode\0"),
        last_error_message: bind!(b"virGetLastErrorMessage\0"),
        set_error_func: bind!(b"virSetErrorFunc\0"),
        _library: library,
    };
    // SAFETY: a null user pointer and a handler that touches nothing.
    unsafe { (api.set_error_func)(std::ptr::null_mut(), Some(ignore_error)) };
    Ok(api)
}

fn c_string(text: &str) -> Result<CString, CallError> {
    CString::new(text).map_err(|_| CallError {
        code: -1,
        message: "text with a NUL byte".to_owned(),
    })
}

/// One owned connection. libvirt connections may be used from several threads at once.
#[derive(Debug)]
pub struct Connection {
    api: &'static Api,
    ptr: ConnectPtr,
}

// SAFETY: libvirt documents virConnectPtr as usable from any thread, concurrently.
unsafe impl Send for Connection {}
// SAFETY: as above; every call through `&Connection` is a thread-safe libvirt call.
unsafe impl Sync for Connection {}

impl Api {
    /// libvirt's last error on this thread (libvirt keeps it per thread).
    fn last_error(&self) -> CallError {
        // SAFETY: both calls only read this thread's error slot; the message pointer is valid
        // until the next libvirt call on this thread, and is copied at once.
        let (code, message) = unsafe {
            let code = (self.last_error_code)();
            let message = (self.last_error_message)();
            let message = if message.is_null() {
                "unknown libvirt error".to_owned()
            } else {
                CStr::from_ptr(message).to_string_lossy().into_owned()
            };
            (code, message)
        };
        CallError { code, message }
    }

    pub fn open(&'static self, uri: &str) -> Result<Connection, CallError> {
        let uri = c_string(uri)?;
        // SAFETY: `uri` is a valid C string for the duration of the call.
        let ptr = unsafe { (self.connect_open)(uri.as_ptr()) };
        if ptr.is_null() {
            Err(self.last_error())
        } else {
            Ok(Connection { api: self, ptr })
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // SAFETY: `ptr` is the one reference this value owns; it is released once, here.
        if unsafe { (self.api.connect_close)(self.ptr) } < 0 {
            log::warn!(
                "closing the libvirt connection failed: {}",
                self.api.last_error().message
            );
        }
    }
}

/// A domain handle, released on drop.
#[derive(Debug)]
pub struct Domain<'c> {
    conn: &'c Connection,
    ptr: DomainPtr,
}

impl Drop for Domain<'_> {
    fn drop(&mut self) {
        // SAFETY: `ptr` is the one reference this value owns; it is released once, here.
        if unsafe { (self.conn.api.free)(self.ptr) } < 0 {
            log::warn!(
                "releasing a libvirt domain handle failed: {}",
                self.conn.api.last_error().message
            );
        }
    }
}

impl Connection {
    fn domain(&self, ptr: DomainPtr) -> Result<Domain<'_>, CallError> {
        if ptr.is_null() {
            Err(self.api.last_error())
        } else {
            Ok(Domain { conn: self, ptr })
        }
    }

    pub fn lookup(&self, name: &str) -> Result<Domain<'_>, CallError> {
        let name = c_string(name)?;
        // SAFETY: a live connection and a valid C string.
        let ptr = unsafe { (self.api.lookup_by_name)(self.ptr, name.as_ptr()) };
        self.domain(ptr)
    }

    pub fn define(&self, xml: &str) -> Result<Domain<'_>, CallError> {
        let xml = c_string(xml)?;
        // SAFETY: a live connection and a valid C string.
        let ptr = unsafe { (self.api.define_xml)(self.ptr, xml.as_ptr()) };
        self.domain(ptr)
    }
}

impl Domain<'_> {
    fn check(&self, result: c_int) -> Result<(), CallError> {
        if result < 0 {
            Err(self.conn.api.last_error())
        } else {
            Ok(())
        }
    }

    /// `virDomainGetState`: the raw state and reason numbers.
    pub fn state(&self) -> Result<(i32, i32), CallError> {
        let (mut state, mut reason) = (0, 0);
        // SAFETY: a live domain handle and two writable ints.
        let result = unsafe { (self.conn.api.get_state)(self.ptr, &mut state, &mut reason, 0) };
        self.check(result).map(|()| (state, reason))
    }

    pub fn create(&self) -> Result<(), CallError> {
        // SAFETY: a live domain handle.
        self.check(unsafe { (self.conn.api.create)(self.ptr) })
    }

    pub fn resume(&self) -> Result<(), CallError> {
        // SAFETY: a live domain handle.
        self.check(unsafe { (self.conn.api.resume)(self.ptr) })
    }

    pub fn managed_save(&self) -> Result<(), CallError> {
        // SAFETY: a live domain handle, no flags.
        self.check(unsafe { (self.conn.api.managed_save)(self.ptr, 0) })
    }

    pub fn shutdown(&self) -> Result<(), CallError> {
        // SAFETY: a live domain handle.
        self.check(unsafe { (self.conn.api.shutdown)(self.ptr) })
    }

    pub fn destroy(&self) -> Result<(), CallError> {
        // SAFETY: a live domain handle.
        self.check(unsafe { (self.conn.api.destroy)(self.ptr) })
    }

    pub fn abort_job(&self) -> Result<(), CallError> {
        // SAFETY: a live domain handle.
        self.check(unsafe { (self.conn.api.abort_job)(self.ptr) })
    }

    pub fn job_info(&self) -> Result<JobInfo, CallError> {
        let mut info = JobInfo::default();
        // SAFETY: a live domain handle and a struct of the header's layout to fill.
        let result = unsafe { (self.conn.api.job_info)(self.ptr, &mut info) };
        self.check(result).map(|()| info)
    }
}
