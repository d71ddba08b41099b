//! `vm-libvirt`: the build of `ocf:clever:vm` that links libvirt's C library, for the actions
//! that need it. Pacemaker runs `vm`, which hands start, stop and a monitor that libvirt's
//! remote protocol cannot answer over to this binary (`exec`, same argv and environment); see
//! `clever_agent_vm::linked`. Everything but the road to libvirt lives in the library.

mod libvirt;

use clever_agent_vm::{monitor, Host, Vm, VmError};
use clever_ocf::{ActionSpec, Context, Declaration, Status};

/// The monitor asks the C library directly: the light build has already tried the remote
/// protocol when it hands a monitor over.
fn host(context: &Context) -> Host<'static> {
    Host::real(&libvirt::connect, None, context)
}

fn start(vm: &Vm, context: &Context) -> Result<Status, VmError> {
    clever_agent_vm::start_on(vm, context, &host(context))
}

fn stop(vm: &Vm, context: &Context) -> Result<Status, VmError> {
    clever_agent_vm::stop_on(vm, context, &host(context))
}

fn monitor(vm: &Vm, context: &Context) -> Result<Status, VmError> {
    monitor::monitor(vm, context, &host(context))
}

static ACTIONS: [ActionSpec<Vm>; 4] = clever_agent_vm::actions(start, stop, monitor);
static DECLARATION: Declaration<Vm> = clever_agent_vm::declaration(&ACTIONS);

fn main() -> std::process::ExitCode {
    clever_ocf::run(&DECLARATION)
}
