//! `vm-libvirt`: the build of `ocf:clever:vm` that links libvirt's C library, for the actions
//! that need it. Pacemaker runs `vm`, which hands start, stop and a monitor that libvirt's
//! remote protocol cannot answer over to this binary (`exec`, same argv and environment); see
//! `clever_agent_vm::linked`. Everything but the road to libvirt lives in the library.

mod libvirt;

use clever_agent_vm::{monitor, Vm, VmError, VmHost};
use clever_ocf::{ActionSpec, Agent, Context, Declaration, ParameterError, Parameters, Status};

/// The same resource as the light build's [`Vm`], configured and checked alike; only the host
/// it builds differs: its connector is libvirt's C library, linked into this binary.
#[derive(Debug)]
struct LinkedVm(Vm);

impl AsRef<Vm> for LinkedVm {
    fn as_ref(&self) -> &Vm {
        &self.0
    }
}

impl Agent for LinkedVm {
    type Error = VmError;
    type Host = VmHost<'static>;

    fn configure(parameters: &Parameters) -> Result<Self, ParameterError> {
        Vm::configure(parameters).map(Self)
    }

    fn check_host(&self, context: &Context) -> Result<(), VmError> {
        self.0.check_host(context)
    }

    /// The monitor asks the C library directly: the light build has already tried the remote
    /// protocol when it hands a monitor over.
    fn host(&self, context: &Context) -> VmHost<'static> {
        VmHost::real(&libvirt::connect, None, context)
    }
}

fn start(vm: &LinkedVm, context: &Context, host: &VmHost<'static>) -> Result<Status, VmError> {
    clever_agent_vm::start_on(&vm.0, context, host)
}

fn stop(vm: &LinkedVm, context: &Context, host: &VmHost<'static>) -> Result<Status, VmError> {
    clever_agent_vm::stop_on(&vm.0, context, host)
}

fn monitor(vm: &LinkedVm, context: &Context, host: &VmHost<'static>) -> Result<Status, VmError> {
    monitor::monitor(&vm.0, context, host)
}

static ACTIONS: [ActionSpec<LinkedVm>; 4] = clever_agent_vm::actions(start, stop, monitor);
static DECLARATION: Declaration<LinkedVm> = clever_agent_vm::declaration(&ACTIONS);

fn main() -> std::process::ExitCode {
    clever_ocf::run(&DECLARATION)
}
