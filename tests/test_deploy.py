"""deploy/: the Zero to JupyterHub values, the service manifests and the image agree with each other and
with the product (config names that exist, services that match their URLs, files the image needs).

The chart's own values schema is not in this repository, so the keys used are checked against the shapes the
chart documents (a hand-written subset: unknown keys refused where the chart refuses them)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml

from jupyter_agent.app import JupyterAgent

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
ROOT = DEPLOY.parent

QUANTITY = {"type": ["number", "string"]}
ENV = {"type": "object", "additionalProperties": {"type": ["string", "object"]}}
RESOURCES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"requests": {"type": "object"}, "limits": {"type": "object"}},
}
EXTRA_FILE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["mountPath"],
    "properties": {
        "mountPath": {"type": "string", "pattern": "^/"},
        "data": {"type": "object"},
        "stringData": {"type": "string"},
        "binaryData": {"type": "string"},
        "mode": {"type": "integer"},
    },
}
# The parts of the chart's values that deploy/values.yaml sets, with the types the chart accepts.
VALUES_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "hub": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "db": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "type": {"enum": ["sqlite-pvc", "sqlite-memory", "mysql", "postgres", "other"]},
                        "url": {"type": "string"},
                        "password": {"type": ["string", "null"]},
                    },
                },
                "concurrentSpawnLimit": {"type": "integer"},
                "consecutiveFailureLimit": {"type": "integer"},
                "activeServerLimit": {"type": "integer"},
                "resources": RESOURCES,
                "extraEnv": ENV,
                "extraConfig": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "proxy": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "chp": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"resources": RESOURCES},
                }
            },
        },
        "singleuser": {
            "type": "object",
            "additionalProperties": False,
            "required": ["image", "cmd", "memory", "cpu", "extraEnv", "extraFiles"],
            "properties": {
                "image": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name", "tag"],
                    "properties": {"name": {"type": "string"}, "tag": {"type": "string"}},
                },
                "cmd": {"type": ["string", "array"]},
                "defaultUrl": {"type": "string"},
                "memory": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"limit": QUANTITY, "guarantee": QUANTITY},
                },
                "cpu": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"limit": {"type": "number"}, "guarantee": {"type": "number"}},
                },
                "extraEnv": ENV,
                "extraFiles": {"type": "object", "additionalProperties": EXTRA_FILE},
                "networkPolicy": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"egress": {"type": "array"}},
                },
                "storage": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"capacity": {"type": "string"}},
                },
            },
        },
        "scheduling": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "userScheduler": {"type": "object", "properties": {"enabled": {"type": "boolean"}}},
                "podPriority": {"type": "object", "properties": {"enabled": {"type": "boolean"}}},
                "userPlaceholder": {
                    "type": "object",
                    "properties": {"enabled": {"type": "boolean"}, "replicas": {"type": "integer"}},
                },
            },
        },
        "cull": {
            "type": "object",
            "additionalProperties": False,
            "required": ["enabled"],
            "properties": {
                "enabled": {"type": "boolean"},
                "timeout": {"type": "integer"},
                "every": {"type": "integer"},
                "maxAge": {"type": "integer"},
            },
        },
    },
}


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load((DEPLOY / "values.yaml").read_text())


def manifests(name: str) -> dict[tuple[str, str], dict]:
    docs = [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def agent_config(values: dict) -> dict:
    files = values["singleuser"]["extraFiles"]
    (config,) = [f for f in files.values() if "jupyter_server_config.d" in f["mountPath"]]
    assert config["mountPath"].endswith(".json"), "the chart renders data as JSON only for a .json name"
    return config["data"]


def test_values_have_the_shapes_the_chart_accepts(values):
    jsonschema.validate(values, VALUES_SCHEMA)


def test_the_agent_settings_are_traits_the_extension_has(values):
    traits = JupyterAgent.class_traits(config=True)
    config = agent_config(values)
    unknown = set(config["JupyterAgent"]) - set(traits)
    assert not unknown, f"not JupyterAgent settings: {unknown}"
    for name, value in config["JupyterAgent"].items():
        traits[name].validate(JupyterAgent(), value)  # the value has the trait's type


def test_the_environment_names_are_the_ones_the_product_reads(values):
    env = values["singleuser"]["extraEnv"]
    source = "".join(p.read_text() for p in (ROOT / "jupyter_agent").rglob("*.py"))
    for name in ("JUPYTER_AGENT_MODEL", "JUPYTER_AGENT_LOCAL_MODEL"):
        assert name in env and f'os.environ.get("{name}"' in source
    assert env["JUPYTER_AGENT_MODEL"].startswith("openai/"), "the proxy speaks the OpenAI API"
    assert env["JUPYTER_AGENT_LOCAL_MODEL"] == "none"


def test_the_hub_hook_is_python_and_gives_each_user_a_proxy_key(values):
    hub = values["hub"]
    for name, code in hub["extraConfig"].items():
        ast.parse(code, filename=name)
    hook = hub["extraConfig"]["10-litellm-user-keys"]
    assert "c.KubeSpawner.pre_spawn_hook" in hook and 'spawner.environment["OPENAI_API_KEY"]' in hook
    for name in re.findall(r"os\.environ\[[\"'](\w+)[\"']\]", hook):
        assert name in hub["extraEnv"], f"the hook reads {name}, which hub.extraEnv does not set"


def test_the_urls_the_pods_use_reach_the_services_the_manifests_define(values):
    config = agent_config(values)["JupyterAgent"]
    litellm, browser = manifests("litellm.yaml"), manifests("browser.yaml")
    for url, service in (
        (config["model_options"]["api_base"], litellm["Service", "litellm"]),
        (config["browser_endpoint"], browser["Service", "playwright"]),
        (values["hub"]["extraEnv"]["LITELLM_PROXY_URL"], litellm["Service", "litellm"]),
    ):
        parsed = urlparse(url)
        assert parsed.hostname.split(".")[0] == service["metadata"]["name"], url
        assert parsed.port in [p["port"] for p in service["spec"]["ports"]], url
    assert config["browser_endpoint"].startswith("ws://"), "a Playwright server, not CDP"
    # the user pods' network policy opens exactly these services' pods and ports
    opened = {
        (rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"], rule["ports"][0]["port"])
        for rule in values["singleuser"]["networkPolicy"]["egress"]
    }
    assert opened == {("litellm", 4000), ("playwright", 3000)}
    for found in (litellm, browser):
        deployment = next(d for (kind, _), d in found.items() if kind == "Deployment")
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_the_proxy_serves_every_model_the_agent_names(values):
    config = yaml.safe_load(manifests("litellm.yaml")["ConfigMap", "litellm-config"]["data"]["config.yaml"])
    served = {m["model_name"] for m in config["model_list"]}
    agent = agent_config(values)["JupyterAgent"]
    named = [
        values["singleuser"]["extraEnv"]["JUPYTER_AGENT_MODEL"],
        *agent["models"],
        *agent["fallback_models"],
    ]
    assert {m.removeprefix("openai/") for m in named} <= served


def test_the_browser_service_runs_the_playwright_version_of_the_image():
    from importlib.metadata import version

    deployment = manifests("browser.yaml")["Deployment", "playwright"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    image_version = re.search(r":v(\d+\.\d+)\.", container["image"]).group(1)
    server_version = re.search(r"playwright@(\d+\.\d+)\.", " ".join(container["command"])).group(1)
    client = ".".join(version("playwright").split(".")[:2])  # what the tests ran against
    pinned = re.search(r'"playwright==(\d+\.\d+)\.\*"', (DEPLOY / "Dockerfile").read_text()).group(1)
    assert image_version == server_version == pinned == client, (
        image_version,
        server_version,
        pinned,
        client,
    )


def test_the_image_installs_the_wheel_this_repository_builds():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=quay\.io/jupyter/[\w-]+-notebook:", dockerfile, re.M)
    assert "python -m build --wheel" in dockerfile
    name = re.search(r'^name = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    wheel = name.replace("-", "_")
    assert f"/tmp/dist/{wheel}-*.whl" in dockerfile
    for copied in re.findall(r"^COPY (?!--from)(\S+)", dockerfile, re.M):
        assert (ROOT / copied).exists(), copied
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert "**/.venv" in ignored and "**/node_modules" in ignored
