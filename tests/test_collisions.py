"""Which files a scan reads, decided as the walk goes (:mod:`dupfinder.scan.collisions`):
examples, and a hypothesis property against the brute-force rule over the whole catalogue."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dupfinder.db.rows import SizeRow
from dupfinder.scan.collisions import Collisions, Seen

TAG = "xxh3-128"
WHOLE = 64 * 1024  # files up to this size are read whole by the prefix stage


def seen(i: int, size: int, inode: int | None = None, nlink: int = 1, prefix: str | None = None,
         full: str | None = None, fresh: bool = True) -> Seen:
    return Seen(i, f"/w/f{i}", size, 1000, 1, inode if inode is not None else i, nlink,
                prefix, full, TAG if prefix else None, fresh)


def ids(work: list) -> list[tuple[int, ...]]:  # type: ignore[type-arg]
    return sorted(w.ids for w in work)


def test_a_file_is_work_once_another_inode_shares_its_size() -> None:
    c = Collisions("me", TAG, WHOLE, ["/w"], lookup=None)
    c.see(seen(1, 10))
    assert c.take_prefix_work() == []  # alone so far: it may stay unread
    c.see(seen(2, 99))
    c.see(seen(3, 10))
    c.see(seen(4, 10))
    c.end_walk()
    assert ids(c.take_prefix_work()) == [(1,), (3,), (4,)]  # the three of size 10


def test_large_files_need_their_full_hash_only_when_prefixes_collide() -> None:
    c = Collisions("me", TAG, WHOLE, ["/w"], lookup=None)
    big = WHOLE + 1
    for i in (1, 2, 3):
        c.see(seen(i, big))
    work = c.take_prefix_work()
    assert len(work) == 3
    for w, prefix in zip(work, ["A", "A", "B"], strict=True):
        c.prefix_done(w, prefix, None)
    full = c.take_full_work()
    assert ids(full) == [(1,), (2,)] and {w.prefix for w in full} == {"A"}


def test_hard_links_are_one_item_read_once() -> None:
    c = Collisions("me", TAG, WHOLE, ["/w"], lookup=None)
    c.see(seen(1, 10, inode=7, nlink=2))
    c.see(seen(2, 10))
    assert c.take_prefix_work() == []  # the link's other path may still come
    c.see(seen(3, 10, inode=7, nlink=2))
    assert ids(c.take_prefix_work()) == [(1, 3), (2,)]


def test_links_alone_are_no_collision() -> None:
    c = Collisions("me", TAG, WHOLE, ["/w"], lookup=None)
    c.see(seen(1, 10, inode=7, nlink=2))
    c.see(seen(2, 10, inode=7, nlink=2))
    c.end_walk()
    assert c.take_prefix_work() == []


def test_the_catalogues_other_rows_count_and_this_hosts_are_hashed_too() -> None:
    outside = [SizeRow(50, "me", "/elsewhere/x", 10, 5, 1, 500, None, None, None),
               SizeRow(51, "nas", "/nas/y", 20, 5, 9, 501, "P", "F", TAG),
               SizeRow(52, "me", "/w/f2", 20, 1000, 1, 2, None, None, None)]  # the walk's own

    def lookup(sizes: list[int]) -> list[SizeRow]:
        return [r for r in outside if r.size in sizes]

    c = Collisions("me", TAG, WHOLE, ["/w"], lookup=lookup)
    c.see(seen(1, 10))
    c.see(seen(2, 20))
    c.end_walk()
    # /w/f1 collides with this host's /elsewhere/x, which is read too; /w/f2 with the nas
    assert ids(c.take_prefix_work()) == [(1,), (2,), (50,)]


def test_another_hosts_unhashed_file_makes_ours_read_in_full() -> None:
    big = WHOLE + 1
    remote = [SizeRow(60, "nas", "/nas/z", big, 5, 9, 600, None, None, None)]
    c = Collisions("me", TAG, WHOLE, ["/w"], lookup=lambda sizes: remote)
    c.see(seen(1, big))
    c.end_walk()
    (w,) = c.take_prefix_work()
    c.prefix_done(w, "A", None)  # no prefix of another inode matches, yet:
    assert ids(c.take_full_work()) == [(1,)]  # the nas cannot read ours, so hash it now


def test_a_settled_scan_looks_nothing_up_unless_the_walk_brings_something_new() -> None:
    asked: list[list[int]] = []

    def lookup(sizes: list[int]) -> list[SizeRow]:
        asked.append(sizes)
        return []

    c = Collisions("me", TAG, WHOLE, ["/w"], lookup=lookup, defer=True)
    c.see(seen(1, 10, fresh=False))  # unhashed: its size was its own
    c.end_walk()
    assert asked == []
    c = Collisions("me", TAG, WHOLE, ["/w"], lookup=lookup, defer=True)
    c.see(seen(1, 10, fresh=False))
    c.see(seen(2, 30))
    c.end_walk()
    assert asked == [[10, 30]]


files = st.lists(st.tuples(
    st.sampled_from(["me", "me", "nas"]),  # host
    st.integers(1, 4),  # size class
    st.integers(0, 6),  # inode
    st.booleans(),  # under the walked root (this host only)
    st.booleans(),  # has its prefix hash already
), max_size=25)


@settings(max_examples=300, deadline=None)
@given(spec=files)
def test_prefix_work_is_exactly_the_brute_force_rule(spec: list[tuple]) -> None:  # type: ignore[type-arg]
    """This host's files without a prefix hash whose size another inode (any host) shares
    are read, each inode once, when the walk holds them or a file of their size: nothing
    more, nothing less (what collides only outside the walk was its own scan's work)."""
    rows, walked = [], []
    taken: set[tuple[str, str]] = set()
    for n, (host, size, inode, inside, hashed) in enumerate(spec):
        inside = inside and host == "me"
        path = f"/w/f{n}" if inside else f"/other/{host}/f{n}"
        key = (host, path)
        if key in taken:
            continue
        taken.add(key)
        prefix = "P" if hashed else None
        rows.append(SizeRow(n, host, path, size, 1, 1, inode, prefix, None,
                            TAG if hashed else None))
        if inside:
            walked.append(Seen(n, path, size, 1, 1, inode, 1, prefix, None,
                               TAG if hashed else None, fresh=not hashed))
    c = Collisions("me", TAG, WHOLE, ["/w"],
                   lookup=lambda sizes: [r for r in rows if r.size in sizes])
    for f in walked:
        c.see(f)
    c.end_walk()
    got = sorted(i for w in c.take_prefix_work() for i in w.ids)
    want = []
    walked_sizes = {f.size for f in walked}
    for r in rows:
        inodes = {(o.host, o.device, o.inode) for o in rows if o.size == r.size}
        if r.host == "me" and r.prefix is None and len(inodes) > 1 and (
                r.path.startswith("/w/") or r.size in walked_sizes):
            want.append(r.id)
    # hard links of one inode are one read; every one of their ids is in it
    assert got == sorted(want)
