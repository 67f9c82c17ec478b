"""Issue 6 settings: several nodes, leases, the dispatcher, Sentinel URLs (no network)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from controller.cluster.policy import node_specs
from controller.config import ConfigError, load_settings
from controller.tools import dispatcher
from controller.urls import parse_sentinel_url


def test_one_node_by_default_named_by_callctl_node() -> None:
    s = load_settings({"CALLCTL_ARI_URL": "http://10.0.0.5:8088", "CALLCTL_NODE": "ast-1",
                       "CALLCTL_ARI_PASSWORD": "pw", "CALLCTL_AMI_PORT": "5039"})
    (node,) = node_specs(s)
    assert (node.name, node.url, node.password, node.ami_port) == (
        "ast-1", "http://10.0.0.5:8088", "pw", 5039)
    assert s.lease_ms == 5000 and s.nodes_primary == () and s.controller_id == ""


def test_several_nodes_with_their_own_credentials() -> None:
    s = load_settings({
        "CALLCTL_ARI_URLS": "a=http://10.0.0.5:8088, b-2=https://10.0.0.6:8089/",
        "CALLCTL_ARI_PASSWORD": "common", "CALLCTL_ARI_PASSWORD_B_2": "own",
        "CALLCTL_ARI_USER_B_2": "ops", "CALLCTL_AMI_PORT_A": "6000",
        "CALLCTL_AMI_SECRET_B_2": "amisecret", "CALLCTL_NODES_PRIMARY": "b-2",
        "CALLCTL_CONTROLLER_ID": "ctl-east", "CALLCTL_LEASE_MS": "3000"})
    a, b = node_specs(s)
    assert (a.name, a.url, a.user, a.password, a.ami_port, a.host) == (
        "a", "http://10.0.0.5:8088", "callctl", "common", 6000, "10.0.0.5")
    assert (b.name, b.url, b.user, b.password, b.ami_secret) == (
        "b-2", "https://10.0.0.6:8089", "ops", "own", "amisecret")
    assert s.nodes_primary == ("b-2",) and s.controller_id == "ctl-east" and s.lease_ms == 3000
    assert "own" not in repr(b) and "amisecret" not in repr(b)  # secrets never in reprs


@pytest.mark.parametrize(("env", "named"), [
    ({"CALLCTL_ARI_URLS": "http://10.0.0.5:8088"}, "CALLCTL_ARI_URLS"),
    ({"CALLCTL_ARI_URLS": "A=http://x:1"}, "CALLCTL_ARI_URLS"),
    ({"CALLCTL_ARI_URLS": "a=ftp://x:1"}, "CALLCTL_ARI_URLS"),
    ({"CALLCTL_ARI_URLS": "a=http://x:1,a=http://y:1"}, "CALLCTL_ARI_URLS"),
    ({"CALLCTL_ARI_URLS": "a=http://x:1", "CALLCTL_NODES_PRIMARY": "c"},
     "CALLCTL_NODES_PRIMARY"),
    ({"CALLCTL_NODE": "bad name"}, "CALLCTL_NODE"),
    ({"CALLCTL_LEASE_MS": "100"}, "CALLCTL_LEASE_MS"),
    ({"CALLCTL_CONTROLLER_ID": "x/y"}, "CALLCTL_CONTROLLER_ID"),
    ({"REDIS_URL": "redis+sentinel://h1:26379"}, "REDIS_URL"),
])
def test_bad_cluster_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(env)


def test_sentinel_urls(tmp_path: Path) -> None:
    su = parse_sentinel_url("redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26380/main/2")
    assert su.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26380))
    assert (su.master, su.db, su.password) == ("main", 2, "s3cret")
    assert "s3cret" not in repr(su)
    assert parse_sentinel_url("redis+sentinel://h:1/m").db == 0
    for bad in ("redis+sentinel://h:1", "redis+sentinel://h/m", "redis+sentinel://h:1/m/x",
                "redis://h:1/m"):
        with pytest.raises(ValueError):
            parse_sentinel_url(bad)
    # a run dir of its own: the checkout's run/secrets.env (after `scripts/run.sh`) holds a
    # Redis password, which load_settings puts into a URL that has none
    s = load_settings({"REDIS_URL": "redis+sentinel://10.0.0.1:26379/main",
                       "CALLCTL_RUN_DIR": str(tmp_path)})
    assert s.redis_url == "redis+sentinel://10.0.0.1:26379/main"


def test_dispatcher_settings(tmp_path: Path) -> None:
    ds = dispatcher.load({"CALLCTL_RUN_DIR": str(tmp_path), "CALLCTL_DISPATCHER_PORT": "5070",
                          "CALLCTL_SIP_NODES": "10.0.0.5:5060, 10.0.0.6:5060",
                          "CALLCTL_DISPATCHER_PING": "2"})
    assert ds.nodes == (("10.0.0.5", 5060), ("10.0.0.6", 5060))
    assert (ds.port, ds.ping_interval, ds.timeout_ms) == (5070, 2, 2000)
    assert dispatcher.load({"CALLCTL_RUN_DIR": str(tmp_path), "CALLCTL_SIP_PORT": "5099"}
                           ).nodes == (("127.0.0.1", 5099),)
    for env, named in (({"CALLCTL_SIP_NODES": "pbx.example:5060"}, "CALLCTL_SIP_NODES"),
                       ({"CALLCTL_SIP_NODES": "10.0.0.5"}, "CALLCTL_SIP_NODES"),
                       ({"CALLCTL_SIP_NODES": "10.0.0.5:5060,10.0.0.5:5060"},
                        "CALLCTL_SIP_NODES"),
                       ({"CALLCTL_DISPATCHER_PING": "0"}, "CALLCTL_DISPATCHER_PING"),
                       ({"CALLCTL_DISPATCHER_BIND": "any"}, "CALLCTL_DISPATCHER_BIND"),
                       ({"CALLCTL_DISPATCHER_PORT": "5060"}, "CALLCTL_DISPATCHER_PORT")):
        with pytest.raises(ConfigError, match=named):
            dispatcher.load({"CALLCTL_RUN_DIR": str(tmp_path), **env})


@pytest.mark.skipif(shutil.which("kamailio") is None, reason="kamailio not installed")
def test_dispatcher_config_renders_every_placeholder(tmp_path: Path) -> None:
    ds = dispatcher.load({"CALLCTL_RUN_DIR": str(tmp_path), "CALLCTL_DISPATCHER_PORT": "5070",
                          "CALLCTL_SIP_NODES": "127.0.0.1:5160,127.0.0.1:5161"})
    cfg = dispatcher.render(ds).read_text()
    assert "listen=udp:127.0.0.1:5070" in cfg and "@" + "PORT@" not in cfg
    assert 'modparam("dispatcher", "ds_ping_interval", 5)' in cfg
    lst = (ds.dir / "dispatcher.list").read_text()
    assert "1 sip:127.0.0.1:5160 0 0 duid=node1" in lst
    assert "1 sip:127.0.0.1:5161 0 0 duid=node2" in lst
