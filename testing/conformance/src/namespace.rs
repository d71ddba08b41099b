//! What test nodes' init scripts share: they run in a private mount namespace and bind their own
//! directories over the host's, and a package need not have made the host's (`libvirt-daemon`
//! alone makes no `/var/lib/libvirt`). Creating a missing target on the host would change the
//! machine and hide the missing step on the next run; this makes it in the namespace only.

/// A shell function for such scripts: `make_missing_dirs SCRATCH DIR…` gives each DIR that does
/// not exist a private writable overlay on its parent (upper and work directories under
/// SCRATCH, which the test removes) and makes DIR in it. The host's directories stay as they
/// were. Call it before any bind below the same parents: an overlay mounted on a parent later
/// would hide those binds.
pub const MAKE_MISSING_DIRS: &str = r#"
make_missing_dirs() {
  scratch=$1; shift
  for target in "$@"; do
    [ -d "$target" ] && continue
    parent=${target%/*}
    if [ "$(findmnt -n -o FSTYPE --mountpoint "$parent" 2>/dev/null)" != overlay ]; then
      layer="$scratch/overlay$parent"
      mkdir -p "$layer/upper" "$layer/work"
      mount -t overlay overlay -o "lowerdir=$parent,upperdir=$layer/upper,workdir=$layer/work" "$parent"
    fi
    mkdir "$target"
  done
}
"#;
