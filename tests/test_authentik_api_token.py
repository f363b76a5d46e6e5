"""The program's standing Authentik credential is not the bootstrap token (issue 17 item 4): the
graph, the rotation's blast radius, and the dynamic provider against a fake Authentik API
(service account, token, the bootstrap token deleted, create-before-delete rotation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.authentik_token import (
    BOOTSTRAP_TOKEN_IDENTIFIER,
    RUNBOOK,
    SERVICE_ACCOUNT,
    TOKEN_IDENTIFIER,
    _AuthentikApiTokenProvider,
)
from components.core.bootstrap_http import BootstrapError
from offline.invokes import SECRET_MARKER as MARKER
from offline.mocks import contains_secret
from offline.plan import write_plan
from tests.helpers.factories import base_raw, plan
from tests.helpers.identity_support import deployed_plan, fake_http, preview_plan
from tests.test_rotation import base, blast_radius, raw  # noqa: F401  (base: the module fixture)

BOOT = "boot-token"


# --- graph ------------------------------------------------------------------------------------

def test_the_authentik_provider_and_the_programs_calls_use_the_api_token_not_the_bootstrap_token():
    mon = preview_plan().monitor
    token, key = mon.named("authentik-config-api-token"), mon.named("authentik-config-api-token-key")
    boot = mon.named("authentik-bootstrap-token")
    assert mon.named("authentik-config-api").property_dependencies["token"] == [token.urn]
    assert mon.named("authentik-config-ready").property_dependencies["token"] == [token.urn]
    assert key.urn in token.property_dependencies["key"] and boot.urn in token.property_dependencies["bootstrap_token"]
    assert mon.depends_on(mon.named("authentik-config-ready"), token)
    # The token is made only once Authentik is served at its public name.
    assert mon.depends_on(token, mon.named("authentik-route"))
    deployed = deployed_plan().monitor
    bootstrap = f"{MARKER}-authentik-bootstrap-token"  # offline.invokes: a RandomPassword by its name
    program_key = f"{MARKER}-authentik-config-api-token-key"
    assert deployed.named("authentik-config-api").input("token") == program_key
    for reg in deployed.registrations.values():
        if reg.type == "pulumi-python:dynamic/weebo:OAuth2GrantTypes":
            assert reg.input("token") == program_key, reg.name
    # The bootstrap token reaches Authentik's Secret (its first start) and the token's create only.
    holders = sorted(r.name for r in deployed.registrations.values() if bootstrap in repr(r.inputs))
    assert holders == ["authentik-config-api-token", "authentik-credentials"]
    api_token = deployed.named("authentik-config-api-token")
    assert contains_secret(api_token.inputs["bootstrap_token"]) and contains_secret(api_token.inputs["key"])
    assert set(api_token.additional_secret_outputs) >= {"key", "bootstrap_token"}
    assert api_token.input("identifier") == TOKEN_IDENTIFIER


def test_neither_token_appears_in_plan_files(tmp_path: Path):
    result = plan(base_raw(), preview=False)
    token = result.monitor.named("authentik-config-api-token")
    assert MARKER in repr(token.input("key")) and MARKER in repr(token.input("bootstrap_token"))
    write_plan(result, tmp_path)
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and MARKER in p.read_text()]


def test_rotating_the_api_token_reaches_the_token_and_its_consumers_only(base):  # noqa: F811
    affected, replaced = blast_radius(base, authentikApiToken=1)
    assert replaced == {"authentik-config-api-token-key"}
    grants = {n for r in base["resources"] if r["type"] == "pulumi-python:dynamic/weebo:OAuth2GrantTypes"
              for n in [r["name"]]}
    assert grants  # the check below means something
    assert affected == {"authentik-config-api-token-key", "authentik-config-api-token", "authentik-config-api",
                        "authentik-config-ready", *grants}
    # The rotated plan blast_radius made (shared): the token's identifier carries the generation.
    token = plan(raw(authentikApiToken=1), preview=False).monitor.named("authentik-config-api-token")
    assert token.input("identifier") == f"{TOKEN_IDENTIFIER}-g1"


# --- the dynamic provider against a fake Authentik ---------------------------------------------

class FakeAuthentik:
    def __init__(self, bootstrap_ready: bool = True, delete_status: int = 204):
        self.tokens: dict[str, dict[str, Any]] = {}  # identifier -> {key, user}
        if bootstrap_ready:
            self.tokens[BOOTSTRAP_TOKEN_IDENTIFIER] = {"key": BOOT, "user": 1}
        self.users = {1: "akadmin"}
        self.groups: dict[str, dict[str, Any]] = {}
        self.delete_status = delete_status
        self.calls: list[tuple[str, str, str]] = []  # (method, path, which token identifier)

    def _who(self, headers: dict[str, str]) -> str | None:
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        key = auth.removeprefix("Bearer ")
        return next((i for i, t in self.tokens.items() if t["key"] == key), None)

    def __call__(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        who = self._who(headers)
        self.calls.append((method, path, who or "invalid"))
        if who is None:
            return 403, {"detail": "Token invalid/expired"}
        if path == "/api/v3/core/users/me/":
            return 200, {"user": {"username": self.users[self.tokens[who]["user"]]}}
        if path.startswith("/api/v3/core/groups/?name="):
            name = path.split("=", 1)[1]
            # A search, as a filter that is not exact would be: the provider picks the exact name.
            return 200, {"results": [{"pk": g["pk"], "name": n} for n, g in self.groups.items() if name in n]}
        if path == "/api/v3/core/groups/" and method == "POST":
            self.groups[body["name"]] = {"pk": "g-uuid", "superuser": body["is_superuser"], "users": set()}
            return 201, {"pk": "g-uuid"}
        if path == "/api/v3/core/groups/g-uuid/add_user/" and method == "POST":
            next(iter(self.groups.values()))["users"].add(body["pk"])
            return 204, None
        if path.startswith("/api/v3/core/users/?username="):
            name = path.split("=", 1)[1]
            return 200, {"results": [{"pk": pk, "username": n} for pk, n in self.users.items() if name in n]}
        if path == "/api/v3/core/users/" and method == "POST":
            assert body["type"] == "service_account" and body["groups"] == ["g-uuid"]
            self.users[2] = body["username"]
            return 201, {"pk": 2}
        if path == "/api/v3/core/tokens/" and method == "POST":
            assert body["intent"] == "api" and body["expiring"] is False
            self.tokens[body["identifier"]] = {"key": "server-generated", "user": body["user"]}
            return 201, {"identifier": body["identifier"]}
        if path.startswith("/api/v3/core/tokens/"):
            identifier, _, action = path.removeprefix("/api/v3/core/tokens/").partition("/")
            if identifier not in self.tokens:
                return 404, None
            if action == "set_key/" and method == "POST":
                self.tokens[identifier]["key"] = body["key"]
                return 204, None
            if method == "DELETE":
                if self.delete_status >= 300:
                    return self.delete_status, {"detail": f"echo {body}"}
                del self.tokens[identifier]
                return 204, None
            if method == "GET":
                return 200, {"identifier": identifier}
        return 404, None


def _props(url: str, **kw: Any) -> dict[str, Any]:
    return {"url": url, "verify_tls": True, "bootstrap_token": BOOT, "key": "key-g0", "identifier": TOKEN_IDENTIFIER,
            "username": SERVICE_ACCOUNT, "timeout_seconds": 5, "poll_interval_seconds": 0.01, "user_pk": None, **kw}


def test_create_makes_a_superuser_service_account_token_and_then_deletes_the_bootstrap_token():
    fake = FakeAuthentik()
    with fake_http(fake) as url:
        outs = _AuthentikApiTokenProvider().create(_props(url)).outs
    assert outs["user_pk"] == 2 and fake.users[2] == SERVICE_ACCOUNT
    assert fake.groups[SERVICE_ACCOUNT]["superuser"] is True and fake.groups[SERVICE_ACCOUNT]["users"] == {2}
    assert fake.tokens == {TOKEN_IDENTIFIER: {"key": "key-g0", "user": 2}}  # the bootstrap token is gone
    # The bootstrap token is deleted last, with the new token, once that answered as pulumi-admin.
    assert fake.calls[-2:] == [("GET", "/api/v3/core/users/me/", TOKEN_IDENTIFIER),
                               ("DELETE", f"/api/v3/core/tokens/{BOOTSTRAP_TOKEN_IDENTIFIER}/", TOKEN_IDENTIFIER)]


def test_create_waits_for_the_bootstrap_token_and_a_failed_run_can_be_resumed():
    fake = FakeAuthentik(delete_status=500)
    with fake_http(fake) as url:
        with pytest.raises(BootstrapError, match="deleting the token authentik-bootstrap-token failed with HTTP 500$"):
            _AuthentikApiTokenProvider().create(_props(url))
        fake.delete_status = 204
        outs = _AuthentikApiTokenProvider().create(_props(url)).outs  # finds the user, group and token
    assert outs["user_pk"] == 2 and len(fake.users) == 2 and BOOTSTRAP_TOKEN_IDENTIFIER not in fake.tokens


def test_a_bootstrap_token_that_never_works_times_out_naming_the_runbook():
    fake = FakeAuthentik(bootstrap_ready=False)
    with fake_http(fake) as url, pytest.raises(BootstrapError, match=RUNBOOK):
        _AuthentikApiTokenProvider().create(_props(url, timeout_seconds=0.2))
    assert not fake.users.keys() - {1}


def test_later_runs_never_send_the_bootstrap_token():
    fake = FakeAuthentik()
    provider = _AuthentikApiTokenProvider()
    with fake_http(fake) as url:
        olds = provider.create(_props(url)).outs
        fake.calls.clear()
        assert not provider.diff(TOKEN_IDENTIFIER, olds, _props(url)).changes
        diff = provider.diff(TOKEN_IDENTIFIER, olds, _props(url, key="key-g1", identifier=f"{TOKEN_IDENTIFIER}-g1"))
        assert diff.changes and not diff.replaces  # never replaced: a create would need the bootstrap token
        provider.update(TOKEN_IDENTIFIER, olds, _props(url, key="key-g1", identifier=f"{TOKEN_IDENTIFIER}-g1"))
    assert fake.calls and {who for _, _, who in fake.calls} <= {TOKEN_IDENTIFIER, f"{TOKEN_IDENTIFIER}-g1"}


def test_rotation_creates_the_new_token_with_the_old_one_then_deletes_the_old_with_the_new():
    fake = FakeAuthentik()
    provider = _AuthentikApiTokenProvider()
    new_id = f"{TOKEN_IDENTIFIER}-g1"
    with fake_http(fake) as url:
        olds = provider.create(_props(url)).outs
        fake.calls.clear()
        outs = provider.update(TOKEN_IDENTIFIER, olds, _props(url, key="key-g1", identifier=new_id)).outs
    assert outs["key"] == "key-g1" and outs["user_pk"] == 2
    assert fake.tokens == {new_id: {"key": "key-g1", "user": 2}}
    made = fake.calls.index(("POST", "/api/v3/core/tokens/", TOKEN_IDENTIFIER))
    checked = fake.calls.index(("GET", "/api/v3/core/users/me/", new_id))
    assert made < checked and fake.calls[-1] == ("DELETE", f"/api/v3/core/tokens/{TOKEN_IDENTIFIER}/", new_id)


def test_a_revoked_program_token_fails_the_rotation_with_the_runbook_and_no_key_in_the_message():
    fake = FakeAuthentik()
    with fake_http(fake) as url:
        olds = {**_props(url), "key": "revoked-key", "user_pk": 2}
        with pytest.raises(BootstrapError, match=RUNBOOK) as err:
            _AuthentikApiTokenProvider().update(TOKEN_IDENTIFIER, olds, _props(url, key="key-g1",
                                                                                  identifier=f"{TOKEN_IDENTIFIER}-g1"))
    assert "revoked-key" not in str(err.value) and "key-g1" not in str(err.value)
    assert BOOT not in {who for _, _, who in fake.calls}


def test_failures_never_echo_the_key():
    fake = FakeAuthentik()
    with fake_http(fake) as url:
        olds = _AuthentikApiTokenProvider().create(_props(url)).outs
        fake.delete_status = 500  # the server echoes the request
        with pytest.raises(BootstrapError) as err:
            _AuthentikApiTokenProvider().update(TOKEN_IDENTIFIER, olds, _props(url, key="key-g1",
                                                                                 identifier=f"{TOKEN_IDENTIFIER}-g1"))
    assert "key-g0" not in str(err.value) and "key-g1" not in str(err.value)
    assert TOKEN_IDENTIFIER in fake.tokens  # the old token stays valid: the state still holds its key


def test_deleting_leaves_the_token_so_a_recovery_replacement_keeps_its_new_token():
    fake = FakeAuthentik()
    with fake_http(fake) as url:
        olds = _AuthentikApiTokenProvider().create(_props(url)).outs
        fake.calls.clear()
        _AuthentikApiTokenProvider().delete(TOKEN_IDENTIFIER, olds)
    assert not fake.calls and TOKEN_IDENTIFIER in fake.tokens


def test_config_refuses_a_group_named_like_the_programs_service_account():
    from stacks.config import ConfigError, parse_config
    raw = base_raw(authentik={"platformAdminGroup": SERVICE_ACCOUNT, "groups": [{"name": SERVICE_ACCOUNT}]})
    with pytest.raises(ConfigError) as err:
        parse_config(raw, frozenset(), stack="test")
    paths = {p.path for p in err.value.problems}
    assert {"authentik.platformAdminGroup", "authentik.groups[0].name"} <= paths


def test_a_user_whose_name_only_contains_pulumi_admin_is_not_taken_for_the_service_account():
    fake = FakeAuthentik()
    fake.users[5] = f"{SERVICE_ACCOUNT}-legacy"  # the list query also returns it
    with fake_http(fake) as url:
        outs = _AuthentikApiTokenProvider().create(_props(url)).outs
    assert outs["user_pk"] == 2 and fake.tokens[TOKEN_IDENTIFIER]["user"] == 2
