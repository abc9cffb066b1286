"""kustomize_lite, the renderer behind the manifest tests: kustomize's results for the features
it supports, and a loud refusal of everything else."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.deploy.kustomize_lite import Object, UnsupportedKustomization, render

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 1
  selector:
    matchLabels: {app: x}
  template:
    metadata:
      labels: {app: x}
    spec:
      initContainers:
        - name: init
          image: example/app:1
      containers:
        - name: main
          image: example/app:1
          envFrom:
            - configMapRef: {name: settings}
          env:
            - name: TOKEN
              valueFrom:
                secretKeyRef: {name: credentials, key: TOKEN}
"""

GENERATORS = """
configMapGenerator:
  - name: settings
    literals: [a=b]
secretGenerator:
  - name: credentials
    literals: [TOKEN=t]
"""


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return directory


def by_kind(objects: list[Object]) -> dict[str, Object]:
    return {o["kind"]: o for o in objects}


def base(tmp_path: Path, extra: str = "") -> Path:
    kustomization = "resources: [deployment.yaml]\n" + GENERATORS + extra
    return write(
        tmp_path / "base",
        {"kustomization.yaml": kustomization, "deployment.yaml": DEPLOYMENT},
    )


def overlay(tmp_path: Path, kustomization: str, **files: str) -> Path:
    base(tmp_path)
    text = "resources: [../base]\n" + textwrap.dedent(kustomization)
    return write(tmp_path / "overlay", {"kustomization.yaml": text, **files})


def test_generated_names_carry_kustomizes_content_hash_and_pod_references_follow(
    tmp_path: Path,
) -> None:
    objects = by_kind(render(base(tmp_path)))
    # The name `kubectl kustomize` (kustomize v5) gives a ConfigMap holding only a=b.
    assert objects["ConfigMap"]["metadata"]["name"] == "settings-4h2mbtbbt6"
    assert objects["ConfigMap"]["data"] == {"a": "b"}
    secret = objects["Secret"]["metadata"]["name"]
    assert secret.startswith("credentials-") and len(secret) == len("credentials-") + 10
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"configMapRef": {"name": "settings-4h2mbtbbt6"}}]
    assert container["env"][0]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": "TOKEN"}


def test_changing_a_generated_value_renames_only_that_object_so_its_pods_roll(
    tmp_path: Path,
) -> None:
    def main(objects: list[Object]) -> Object:
        return dict(by_kind(objects)["Deployment"]["spec"]["template"]["spec"]["containers"][0])

    before = main(render(base(tmp_path / "before")))
    edited = "configMapGenerator: [{name: settings, behavior: merge, literals: [a=c]}]"
    after = main(render(overlay(tmp_path / "after", edited)))
    assert after["envFrom"] != before["envFrom"]
    assert after["env"] == before["env"]  # the Secret did not change


def test_long_secret_values_are_base64_wrapped_at_70_characters(tmp_path: Path) -> None:
    path = base(tmp_path)
    text = (path / "kustomization.yaml").read_text().replace("TOKEN=t", "TOKEN=" + "x" * 60)
    (path / "kustomization.yaml").write_text(text)
    value = by_kind(render(path))["Secret"]["data"]["TOKEN"]
    first, second, rest = value.split("\n")
    assert (len(first), len(second), rest) == (70, 10, "")


def test_generator_merge_keeps_base_keys_and_replace_drops_them(tmp_path: Path) -> None:
    objects = by_kind(
        render(
            overlay(
                tmp_path,
                """
                configMapGenerator:
                  - {name: settings, behavior: merge, literals: [c=d]}
                secretGenerator:
                  - {name: credentials, behavior: replace, literals: [OTHER=o]}
                """,
            )
        )
    )
    assert objects["ConfigMap"]["data"] == {"a": "b", "c": "d"}
    assert set(objects["Secret"]["data"]) == {"OTHER"}


def test_namespace_labels_images_and_patches_apply_to_the_base(tmp_path: Path) -> None:
    objects = by_kind(
        render(
            overlay(
                tmp_path,
                """
                namespace: prod
                labels:
                  - pairs: {tier: web}
                    includeTemplates: true
                images:
                  - {name: example/app, newName: registry.example.com/app, newTag: "2"}
                patches:
                  - path: replicas.yaml
                """,
                **{
                    "replicas.yaml": """
                    apiVersion: apps/v1
                    kind: Deployment
                    metadata: {name: app}
                    spec:
                      replicas: 4
                      selector: null
                    """
                },
            )
        )
    )
    deployment = objects["Deployment"]
    assert {o["metadata"]["namespace"] for o in objects.values()} == {"prod"}
    assert {o["metadata"]["labels"]["tier"] for o in objects.values()} == {"web"}
    assert deployment["spec"]["template"]["metadata"]["labels"] == {"app": "x", "tier": "web"}
    assert deployment["spec"]["replicas"] == 4 and "selector" not in deployment["spec"]
    pod = deployment["spec"]["template"]["spec"]
    images = {c["image"] for c in pod["containers"] + pod["initContainers"]}
    assert images == {"registry.example.com/app:2"}


@pytest.mark.parametrize(
    "line",
    [
        "commonLabels: {a: b}",
        "namePrefix: x-",
        "replicas: [{name: app, count: 2}]",
        "patchesStrategicMerge: [p.yaml]",
        "components: [../c]",
        "generatorOptions: {disableNameSuffixHash: true}",
    ],
)
def test_kustomization_keys_it_does_not_implement_are_refused(tmp_path: Path, line: str) -> None:
    with pytest.raises(UnsupportedKustomization, match="unsupported keys"):
        render(base(tmp_path, line + "\n"))


@pytest.mark.parametrize(
    ("kustomization", "message"),
    [
        ("resources: [https://example.com/x]", "only local resources"),
        ("images: [{name: other/image, newTag: '2'}]", "matches no container"),
        ("images: [{name: example/app, digest: 'sha256:00'}]", "unsupported keys"),
        ("labels: [{pairs: {a: b}, includeSelectors: true}]", "includeSelectors"),
        ("configMapGenerator: [{name: missing, behavior: merge}]", "needs a generated"),
        ("configMapGenerator: [{name: x, files: [a.txt]}]", "unsupported keys"),
        ("configMapGenerator: [{name: x, literals: [\"a='quoted'\"]}]", "quoted value"),
        ("patches: [{path: p.yaml, target: {kind: Deployment}}]", "unsupported keys"),
    ],
)
def test_features_it_does_not_implement_are_refused(
    tmp_path: Path, kustomization: str, message: str
) -> None:
    with pytest.raises(UnsupportedKustomization, match=message):
        render(overlay(tmp_path, kustomization))


def test_list_fields_in_patches_are_refused(tmp_path: Path) -> None:
    patch = """
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: app}
    spec:
      template:
        spec:
          containers: [{name: main, image: other}]
    """
    with pytest.raises(UnsupportedKustomization, match="list merges"):
        render(overlay(tmp_path, "patches: [{path: p.yaml}]", **{"p.yaml": patch}))


def test_a_patch_for_an_object_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    patch = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: typo}\nspec: {replicas: 2}\n"
    with pytest.raises(UnsupportedKustomization, match="no Deployment 'typo'"):
        render(overlay(tmp_path, "patches: [{path: p.yaml}]", **{"p.yaml": patch}))


def test_kinds_it_does_not_know_are_refused(tmp_path: Path) -> None:
    stateful = DEPLOYMENT.replace("kind: Deployment", "kind: StatefulSet")
    path = write(
        tmp_path,
        {"kustomization.yaml": "resources: [s.yaml]\n", "s.yaml": stateful},
    )
    with pytest.raises(UnsupportedKustomization, match="StatefulSet is not known"):
        render(path)
