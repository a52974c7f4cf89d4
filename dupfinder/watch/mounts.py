"""Which watched paths lie on file systems that send no inotify events for changes made
elsewhere: NFS, SMB/CIFS, sshfs and the like report only what this machine itself does
there, so the watch rescans them every ``rescan_every`` instead."""

from __future__ import annotations

from dupfinder.paths import is_under

NETWORK_TYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "lustre", "afs",
    "fuse.sshfs", "fuse.rclone", "fuse.s3fs", "fuse.glusterfs", "fuse.ceph", "davfs",
    "fuse.davfs2",
})


def _unescape(field: str) -> str:
    """A mount point as mountinfo writes it (space, tab, newline and backslash as octal)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts(mountinfo: str) -> list[tuple[str, str]]:
    """(mount point, file system type) of each line of ``/proc/self/mountinfo``."""
    found = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        parts = left.split()
        if not sep or len(parts) < 5 or not right:
            continue
        found.append((_unescape(parts[4]), right.split()[0]))
    return found


def network_paths(roots: list[str], mountinfo: str | None = None) -> list[str]:
    """The roots on a network file system, and the network mounts below the roots."""
    if mountinfo is None:
        try:
            with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
                mountinfo = f.read()
        except OSError:
            return []
    table = mounts(mountinfo)
    found: list[str] = []
    for root in roots:
        # the mount the root lies on: the longest mount point above it, the last of those
        # stacked on one point
        kind_here = ""
        depth = -1
        for point, kind in table:
            if is_under(root, point) and len(point) >= depth:
                kind_here, depth = kind, len(point)
        if kind_here in NETWORK_TYPES:
            found.append(root)
            continue
        found += sorted(point for point, kind in table
                        if kind in NETWORK_TYPES and point != root and is_under(point, root))
    return found
