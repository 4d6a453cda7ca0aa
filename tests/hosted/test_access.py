"""Who may read and change hosted packages: the rules from settings, as tables."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from proxy.errors import Forbidden, Unauthenticated
from proxy.hosted.access import HostedAccess, groups_of
from proxy.identity import ANONYMOUS, Identity
from proxy.npm.names import PackageName

ACCESS = HostedAccess.of(
    readers=[("@acme", "developers+ci"), ("@acme/secret", "security"), ("acme-utils", "*")],
    publishers=[("@acme", "developers"), ("@acme/secret", "security")],
    anonymous_read=False,
    admin_groups=["admin"],
    unpublish_hours=72,
)
ANON_SOME = HostedAccess.of(
    [("@acme/secret", "security")],
    [],
    anonymous_read=True,
    admin_groups=["admin"],
    unpublish_hours=72,
)
OPEN = HostedAccess.of([], [], anonymous_read=True, admin_groups=["admin"], unpublish_hours=72)

NOT_READERS = HostedAccess.of(
    readers=[("@acme/secret", "security")],
    publishers=[("@acme", "developers")],  # the scope's publishers may not read this one
    anonymous_read=False,
    admin_groups=["admin"],
    unpublish_hours=72,
)
DEV = Identity("developers", "alice")
CI = Identity("ci", "runner-7")
SEC = Identity("security", "eve")
ADMIN = Identity("admin", "root")
GUEST = Identity("contractors", "bob")

READS = [
    (ACCESS, DEV, "@acme/greeter", None),
    (ACCESS, CI, "@acme/greeter", None),
    (ACCESS, GUEST, "@acme/greeter", Forbidden),
    (ACCESS, ANONYMOUS, "@acme/greeter", Unauthenticated),
    (ACCESS, DEV, "@acme/secret", Forbidden),  # the name's own rule wins over the scope's
    (ACCESS, SEC, "@acme/secret", None),
    (ACCESS, ADMIN, "@acme/secret", None),
    (ACCESS, GUEST, "acme-utils", None),  # `*`: every token
    (ACCESS, ANONYMOUS, "acme-utils", Unauthenticated),
    (OPEN, ANONYMOUS, "@acme/greeter", None),  # internal_anonymous_read
    (ANON_SOME, ANONYMOUS, "@acme/greeter", None),  # no rule names groups for it
    (ANON_SOME, ANONYMOUS, "@acme/secret", Unauthenticated),  # never past a rule's groups
    (OPEN, GUEST, "@acme/greeter", None),  # no rule: every token
]


@pytest.mark.parametrize(("access", "who", "name", "error"), READS)
def test_reading(
    access: HostedAccess, who: Identity, name: str, error: type[Exception] | None
) -> None:
    package = PackageName.parse(name)
    if error is None:
        access.check_read(who, package)
        assert access.may_read(who, package)
    else:
        with pytest.raises(error):
            access.check_read(who, package)
        assert not access.may_read(who, package)


WRITES = [
    (ACCESS, DEV, "@acme/greeter", None),
    (
        ACCESS,
        CI,
        "@acme/greeter",
        "group 'ci' may not publish @acme/greeter; the groups that may: admin, developers",
    ),
    (ACCESS, DEV, "@acme/secret", "the groups that may: admin, security"),
    (NOT_READERS, DEV, "@acme/secret", "group 'developers' may not read @acme/secret"),
    (ACCESS, ADMIN, "@acme/secret", None),
    (ACCESS, ANONYMOUS, "@acme/greeter", "you need a Floodgate token"),
    (ACCESS, GUEST, "acme-utils", "the groups that may: admin"),  # no rule: admins only
    (OPEN, DEV, "@acme/greeter", "the groups that may: admin"),
]


@pytest.mark.parametrize(("access", "who", "name", "refusal"), WRITES)
def test_publishing(access: HostedAccess, who: Identity, name: str, refusal: str | None) -> None:
    if refusal is None:
        access.check_write(who, PackageName.parse(name))
    else:
        with pytest.raises((Forbidden, Unauthenticated), match=refusal):
            access.check_write(who, PackageName.parse(name))


NOW = datetime(2026, 12, 10, 12, 0, tzinfo=UTC).timestamp()
UNPUBLISH = [
    (DEV, "2026-12-10T11:00:00.000Z", None),  # an hour ago
    (DEV, "2026-12-07T13:00:00.000Z", None),  # 71 hours ago
    (DEV, "2026-12-07T11:00:00.000Z", "more than 72 hours ago"),
    (DEV, None, "more than 72 hours ago"),  # unknown publish time: the safe side
    (DEV, "garbage", "more than 72 hours ago"),
    (ADMIN, "2020-01-01T00:00:00.000Z", None),  # admins may, whenever
    (CI, "2026-12-10T11:00:00.000Z", "may not unpublish"),
]


@pytest.mark.parametrize(("who", "published", "refusal"), UNPUBLISH)
def test_unpublishing_is_for_publishers_within_the_window_and_admins_after(
    who: Identity, published: str | None, refusal: str | None
) -> None:
    package = PackageName.parse("@acme/greeter")
    if refusal is None:
        ACCESS.check_unpublish(who, package, "1.0.0", published, NOW)
    else:
        with pytest.raises(Forbidden, match=refusal):
            ACCESS.check_unpublish(who, package, "1.0.0", published, NOW)


def test_groups_and_collaborators() -> None:
    assert groups_of("developers+ci") == groups_of(" developers  ci ") == {"developers", "ci"}
    assert ACCESS.collaborators(PackageName.parse("@acme/greeter")) == {
        "admin": "read-write",
        "ci": "read-only",
        "developers": "read-write",
    }
    assert OPEN.collaborators(PackageName.parse("@acme/x")) == {
        "admin": "read-write",
        "*": "read-only",
    }
