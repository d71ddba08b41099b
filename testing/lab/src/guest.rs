//! The test guest: a disk-less multiboot ELF of a few KB, built at lab start-up with `as` and
//! `ld`, that fills its RAM with pseudo-random data (so hibernation images are full size), prints
//! "boot" once and then an increasing counter on COM1. The console goes to a file in the lab
//! directory, appended across nodes: a counter that continues after a move proves a resume, a
//! second "boot" proves a cold boot.
//!
//! The assembly is the one of `agents/vm`'s test lab (the same guest, so the agent's tests and
//! the lab's prove the same thing).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clever_command::{CommandLine, HostCommands, RunCommand};
use clever_deadline::Deadline;

use crate::error::LabError;

pub const GUEST_ASM: &str = r#"
# Disk-less multiboot test guest: fills RAM above 2 MiB with xorshift data (so hibernation images
# are full size), then prints "boot" once and an increasing counter on COM1 forever.
.set MB_MAGIC, 0x1BADB002
.set MB_FLAGS, 0x00000003
.section .text
.code32
.align 4
.long MB_MAGIC
.long MB_FLAGS
.long -(MB_MAGIC + MB_FLAGS)
.globl _start
_start:
    mov $stack_top, %esp
    mov 8(%ebx), %ecx
    shl $10, %ecx
    add $0x100000, %ecx
    mov $0x200000, %edi
    mov $0x12345678, %eax
fill:
    cmp %ecx, %edi
    jae filled
    mov %eax, %edx
    shl $13, %edx
    xor %edx, %eax
    mov %eax, %edx
    shr $17, %edx
    xor %edx, %eax
    mov %eax, %edx
    shl $5, %edx
    xor %edx, %eax
    mov %eax, (%edi)
    add $4, %edi
    jmp fill
filled:
    mov $boot_msg, %esi
    call puts
    xor %ebp, %ebp
count:
    inc %ebp
    mov %ebp, %eax
    mov $numbuf_end, %edi
    movb $0, (%edi)
    dec %edi
    movb $10, (%edi)
digits:
    xor %edx, %edx
    mov $10, %ecx
    div %ecx
    add $48, %dl
    dec %edi
    mov %dl, (%edi)
    test %eax, %eax
    jnz digits
    mov %edi, %esi
    call puts
    mov $DELAY, %ecx
wait:
    dec %ecx
    jnz wait
    jmp count
puts:
    lodsb
    test %al, %al
    jz done
    mov %al, %bl
    mov $0x3fd, %dx
ready:
    inb %dx, %al
    test $0x20, %al
    jz ready
    mov $0x3f8, %dx
    mov %bl, %al
    outb %al, %dx
    jmp puts
done:
    ret
.section .data
boot_msg: .asciz "boot\n"
numbuf: .space 16
numbuf_end: .byte 0
.section .bss
.align 16
.space 4096
stack_top:
"#;

/// Assembles and links the guest into `dir/guest.elf`.
pub fn build(dir: &Path) -> Result<PathBuf, LabError> {
    let source = dir.join("guest.S");
    let object = dir.join("guest.o");
    let guest = dir.join("guest.elf");
    fs::write(&source, GUEST_ASM).map_err(LabError::io("writing", &source))?;
    let deadline = Deadline::after(Duration::from_secs(30));
    HostCommands.run_ok(
        &CommandLine::new("/usr/bin/as")
            .args(["--32", "--defsym", "DELAY=20000000", "-o"])
            .arg(&object)
            .arg(&source),
        &deadline,
    )?;
    HostCommands.run_ok(
        &CommandLine::new("/usr/bin/ld")
            .args([
                "-m",
                "elf_i386",
                "-n",
                "-Ttext=0x100000",
                "--no-warn-rwx-segments",
                "-o",
            ])
            .arg(&guest)
            .arg(&object),
        &deadline,
    )?;
    Ok(guest)
}

/// A fixed UUID per domain name (FNV-1a), as an admin would write into the XML.
pub fn uuid_for(name: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let hex = format!("{hash:016x}{:016x}", hash.rotate_left(29));
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// The domain XML of the guest: TCG, `mib` of RAM, kernel and console at the given paths.
pub fn domain_xml(name: &str, mib: u32, kernel: &Path, serial: &Path) -> String {
    format!(
        "<domain type='qemu'>\n  <name>{name}</name>\n  <uuid>{uuid}</uuid>\n  \
         <memory unit='MiB'>{mib}</memory>\n  \
         <vcpu>1</vcpu>\n  <os><type arch='x86_64' machine='pc'>hvm</type>\
         <kernel>{kernel}</kernel></os>\n  <on_poweroff>destroy</on_poweroff>\n  \
         <on_reboot>restart</on_reboot>\n  <on_crash>destroy</on_crash>\n  <devices>\n    \
         <emulator>/usr/bin/qemu-system-x86_64</emulator>\n    <serial type='file'><source \
         path='{serial}' append='on'/><target port='0'/></serial>\n    <memballoon \
         model='none'/>\n  </devices>\n</domain>\n",
        uuid = uuid_for(name),
        kernel = kernel.display(),
        serial = serial.display(),
    )
}

/// `xml` with the guest's vCPU scheduled `SCHED_IDLE` (libvirt's `vcpusched`, no cgroup
/// needed): the guest spins its vCPU, and several of them must not take the cores from the
/// cluster's daemons (or the machine's other users); they count whenever a core is free.
pub fn idle_vcpu(xml: &str) -> String {
    xml.replacen(
        "<vcpu>1</vcpu>",
        "<vcpu>1</vcpu>\n  <cputune><vcpusched vcpus='0' scheduler='idle'/></cputune>",
        1,
    )
}

/// What the guest printed so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Serial {
    /// How many times it booted.
    pub boots: usize,
    /// The counter values, in order.
    pub counts: Vec<u64>,
}

impl Serial {
    /// Parses the console text; a last line cut in the middle of a number is ignored.
    pub fn parse(text: &str) -> Self {
        let mut serial = Self::default();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        for line in complete.lines() {
            match line.trim() {
                "boot" => serial.boots += 1,
                number => {
                    if let Ok(n) = number.parse() {
                        serial.counts.push(n);
                    }
                }
            }
        }
        serial
    }

    pub fn read(path: &Path) -> Self {
        Self::parse(&fs::read_to_string(path).unwrap_or_default())
    }

    pub fn last(&self) -> Option<u64> {
        self.counts.last().copied()
    }

    /// Whether the counter only ever went up: the guest resumed, it never rebooted in between.
    pub fn increasing(&self) -> bool {
        self.counts.windows(2).all(|w| w[0] < w[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_counts_boots_and_ignores_a_cut_line() {
        let serial = Serial::parse("boot\n1\n2\n3\nboot\n1\n2");
        assert_eq!(serial.boots, 2);
        assert_eq!(serial.counts, vec![1, 2, 3, 1]);
    }

    #[test]
    fn domain_xml_names_kernel_and_console() {
        let xml = domain_xml(
            "clever",
            64,
            Path::new("/srv/g.elf"),
            Path::new("/run/s.log"),
        );
        assert!(xml.contains("<kernel>/srv/g.elf</kernel>"));
        assert!(xml.contains("path='/run/s.log' append='on'"));
        assert!(xml.contains(&uuid_for("clever")));
        let idle = idle_vcpu(&xml);
        assert!(
            idle.contains("<vcpusched vcpus='0' scheduler='idle'/>"),
            "{idle}"
        );
    }
}
