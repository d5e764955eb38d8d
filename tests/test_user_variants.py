"""Variants from the user's own code: files, modules, installed plugins and function objects;
PyTorch and Flax modules through Keras; the model digest in a configuration's identity; and
every bad input (one line and exit 2 before anything trains, or a failed record of its own)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import mnist_bench
import pytest
from conftest import BACKEND, INSTALLED, ROOT, make_record, only_run, run_cli
from mnist_bench.core import identity
from mnist_bench.core.errors import UserError
from mnist_bench.plan.variants import spec_of
from mnist_bench.runfile import records
from mnist_bench.runfile.records import load_run
from mnist_bench.runfile.schema import run_file_schema

TINY = ("--epochs", "1", "--train-limit", "300", "--test-limit", "100", "--no-figures")
GATE = Path(__file__).parent / "fixtures" / "gate"


def nets(width: int = 64, name: str = "slim", comment: str = "a slim net") -> str:
    """A user's file: one dense network, its width, function name and a comment to vary."""
    return textwrap.dedent(f'''\
        """Networks of the user's own."""
        import keras

        from mnist_bench.models import variant


        # {comment}
        @variant(description="slim dense", epochs=1, batch_size=64)
        def {name}():
            return keras.Sequential([
                keras.Input((784,)),
                keras.layers.Dense({width}, activation="relu"),  # {comment}
                keras.layers.Dense(10, activation="softmax"),
            ])
        ''')


BAD_NETS = textwrap.dedent('''\
    """Builders that go wrong, and one that does not."""
    import keras


    def raises():
        raise RuntimeError("broken on purpose")


    def not_a_model():
        return {"layers": 2}


    def seven_classes():
        return keras.Sequential([keras.Input((784,)), keras.layers.Dense(7)])


    def good():
        return keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                                 keras.layers.Dense(10, activation="softmax")])
    ''')


# --------------------------------------------------------------------------- model digest
DIGESTS = """
import json, sys
from mnist_bench.execute import architecture
from mnist_bench.plan import variants
out = {}
for target in sys.argv[1:]:
    build = variants.load(target)
    first, again = architecture.model_digest(build()), architecture.model_digest(build())
    assert first == again, (target, first, again)  # a second build (dense_1...) is the same
    out[target] = first
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def digest_files(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("digests")
    files = {
        "base": nets(64),
        "wider": nets(96),
        "renamed": nets(64, name="thin", comment="the comment is another, the net is not"),
    }
    targets = {}
    for key, text in files.items():
        (folder / f"{key}.py").write_text(text)
        targets[key] = f"{folder / key}.py:{'thin' if key == 'renamed' else 'slim'}"
    return targets


def digests_on(backend: str, targets: list[str]) -> dict[str, str]:
    env = {**os.environ, "KERAS_BACKEND": backend}
    out = subprocess.run(
        [sys.executable, "-c", DIGESTS, *targets],
        capture_output=True, text=True, env=env, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def digests(digest_files) -> dict[str, str]:
    found = digests_on(BACKEND, list(digest_files.values()))
    return {key: found[target] for key, target in digest_files.items()}


def test_layer_width_changes_the_digest_a_renamed_function_or_comment_does_not(digests):
    assert all(identity.MODEL_DIGEST.fullmatch(d) and d for d in digests.values())
    assert digests["wider"] != digests["base"]
    assert digests["renamed"] == digests["base"]


@pytest.mark.skipif(len(INSTALLED) < 2, reason="needs two backends")
def test_the_same_model_has_the_same_digest_on_every_backend(digest_files, digests):
    other = next(b for b in INSTALLED if b != BACKEND)
    found = digests_on(other, [digest_files["base"], digest_files["wider"]])
    assert found[digest_files["base"]] == digests["base"]
    assert found[digest_files["wider"]] == digests["wider"]


# ------------------------------------------------------------------------------- identity
def test_the_digest_is_in_the_configuration_not_in_the_planned_job():
    planned = make_record().job
    built = dataclasses.replace(planned, model_digest="0123456789abcdef")
    assert built.key == planned.key  # the runner pairs planned jobs with their records
    assert built.config_key != planned.config_key
    other = dataclasses.replace(planned, model_digest="fedcba9876543210")
    assert identity.differences([built], [other]) == ["model 0123456789abcdef → fedcba9876543210"]
    assert identity.differences([planned], [other]) == []  # missing: no difference
    fill = identity.digest_filler([built])
    assert fill(planned).model_digest == "0123456789abcdef"
    assert identity.digest_filler([built, other])(planned) == planned  # ambiguous: as it is
    with pytest.raises(ValueError, match="model_digest"):
        dataclasses.replace(planned, model_digest="not hex")


def test_schema_describes_the_new_fields_and_refuses_what_the_reader_refuses():
    validator = jsonschema.Draft202012Validator(run_file_schema())
    record = make_record(test_accuracy=0.9)
    record.job = dataclasses.replace(record.job, model_digest="0123456789abcdef")
    record.variant_source = identity.VariantSource("x.py:f", "/a/x.py:f", "/a/x.py", "0" * 64)
    record.traceback = "Traceback (most recent call last): ..."
    run = records.RunFile("r", "2026-01-01T00:00:00Z", {}, {}, [record], schema_version=2)
    data = json.loads(json.dumps(run.to_dict()))
    validator.validate(data)
    assert records.RunFile.from_dict(data).records[0].job.model_digest == "0123456789abcdef"
    for where, bad in (("job", {"model_digest": "XYZ"}), ("variant_source", {"sha256": "12"})):
        broken = json.loads(json.dumps(data))
        broken["records"][0][where].update(bad)
        assert not validator.is_valid(broken)
        with pytest.raises(ValueError):
            records.RunFile.from_dict(broken)


# --------------------------------------------------------------------- check, compare, report
def _with_digest(source: Path, target: Path, digest: str, variant: str | None = None) -> str:
    """The run file `source` again, its records' models (of `variant`, or all) digested."""
    run = load_run(source)
    for r in run.records:
        if variant is None or r.variant == variant:
            r.job = dataclasses.replace(r.job, model_digest=digest)
    target.write_text(json.dumps(run.to_dict()))
    return str(target)


def test_check_tells_another_model_from_the_baseline_and_matches_files_without(tmp_path, digests):
    base = str(GATE / "baseline.json")
    variant = load_run(GATE / "aa.json").records[0].variant
    narrow = _with_digest(GATE / "aa.json", tmp_path / "narrow.json", digests["base"])
    # A baseline without digests (every run file before them) matches any model.
    passed = run_cli("check", narrow, "--baseline", base)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    # Same variant names, one of them now 96 units wide: never passes, and says why.
    with_model = _with_digest(GATE / "baseline.json", tmp_path / "base.json", digests["base"])
    all_wide = _with_digest(GATE / "aa.json", tmp_path / "all.json", digests["wider"])
    nothing = run_cli("check", all_wide, "--baseline", with_model)
    assert nothing.returncode == 2, nothing.stdout + nothing.stderr
    assert f"model {digests['base']} → {digests['wider']}" in nothing.stderr
    wide = _with_digest(Path(narrow), tmp_path / "wide.json", digests["wider"], variant)
    failed = run_cli("check", wide, "--baseline", with_model)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert f"model {digests['base']} → {digests['wider']}" in failed.stdout
    verdict = mnist_bench.check(wide, with_model)
    assert not verdict.passed
    # On purpose: matched on the variant, backend and device alone, the two are compared.
    across = run_cli(
        "check", wide, "--baseline", with_model, "--match-on", "variant,backend,device"
    )
    assert across.returncode == 0, across.stdout + across.stderr


def test_report_keeps_one_row_for_a_model_across_old_and_new_files(tmp_path, digests):
    old = str(GATE / "aa.json")
    new = _with_digest(GATE / "aa.json", tmp_path / "new.json", digests["base"])
    both = run_cli("report", old, new, "--format", "csv")
    alone = run_cli("report", old, "--format", "csv")
    assert both.returncode == alone.returncode == 0, both.stderr + alone.stderr
    assert len(both.stdout.splitlines()) == len(alone.stdout.splitlines())


# ------------------------------------------------------------------------------- bad input
@pytest.fixture
def user_files(tmp_path) -> Path:
    (tmp_path / "my_nets.py").write_text(nets())
    (tmp_path / "bad_nets.py").write_text(BAD_NETS)
    (tmp_path / "boom.py").write_text('raise RuntimeError("boom at import")\n')
    return tmp_path


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("{tmp}/nope.py:slim", "no such file"),
        ("no_such_module_xyz:build", "no module named 'no_such_module_xyz'"),
        ("{tmp}/my_nets.py:missing", "has no function 'missing'"),
        ("{tmp}/boom.py:f", "raised RuntimeError: boom at import"),
        ("{tmp}/my_nets.py:not a name", "is not a function name"),
        ("3rd.party:build", "is not a module name"),
        ("nope", "unknown variant 'nope'; valid: single-dense"),
    ],
)
def test_a_variant_that_cannot_be_found_is_one_line_and_exit_2(user_files, spec, says):
    spec = spec.format(tmp=user_files)
    results = user_files / "runs"
    out = run_cli("run", "--variant", spec, "-b", BACKEND, "--results-dir", str(results), *TINY)
    assert out.returncode == 2, out.stdout + out.stderr
    assert says in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert not results.exists() or not list(results.glob("*.json"))  # nothing trained


def test_a_suite_names_the_line_of_a_missing_file(user_files):
    suite = user_files / "mine.toml"
    suite.write_text(f'variants = ["{user_files}/gone.py:slim"]\n')
    out = run_cli("run", "--suite", str(suite), "-b", BACKEND, *TINY)
    assert out.returncode == 2 and f"{suite}:1: variant" in out.stderr, out.stderr
    assert "no such file" in out.stderr and out.stderr.count("\n") == 1


def test_function_objects_name_their_module_and_the_unloadable_are_refused(tmp_path):
    from mnist_bench.models import cnn

    assert spec_of(cnn.convnet) == "mnist_bench.models.cnn:convnet"

    def closure():
        return None

    main = type(closure)(closure.__code__, {"__name__": "__main__"}, "in_main")
    main.__qualname__ = "in_main"
    for function, says in (
        (lambda: None, "a lambda cannot be loaded"),
        (closure, "is defined inside a function"),
        (main, "is defined in __main__"),
    ):
        with pytest.raises(UserError, match=says) as caught:
            mnist_bench.run(variants=[function], results_dir=tmp_path, progress=False)
        assert "the worker is another process" in str(caught.value)
        assert "\n" not in str(caught.value)
    assert not list(tmp_path.glob("*.json"))


@pytest.mark.slow  # a real run of two jobs, one of them failing (about 17 s)
def test_a_bad_builder_fails_its_own_record_and_the_run_finishes(user_files):
    """A builder that raises, returns no model, or a model of 7 classes: three failed records,
    each with its cause and traceback kept in the record, none printed; the good variant (a
    MODULE:FUNCTION from the user's import path) trains; exit 1."""
    results = user_files / "runs"
    specs = [f"{user_files}/bad_nets.py:{f}" for f in ("raises", "not_a_model", "seven_classes")]
    out = run_cli(
        "run", "--variant", ",".join([*specs, "bad_nets:good"]), "-b", BACKEND,
        "--results-dir", str(results), *TINY, env={"PYTHONPATH": str(user_files)},
    )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    by_name = {r.variant: r for r in only_run(results).records}
    assert set(by_name) == {
        "bad_nets.py:raises", "bad_nets.py:not_a_model", "bad_nets.py:seven_classes",
        "bad_nets:good",
    }  # fmt: skip
    why = {
        "bad_nets.py:raises": "building the model raised RuntimeError: broken on purpose",
        "bad_nets.py:not_a_model": "it returned a dict, not a keras.Model",
        "bad_nets.py:seven_classes": "the model's output shape is (7,), not (10,)",
    }
    for name, says in why.items():
        r = by_name[name]
        assert r.status == "failed" and says in r.error, r.error
    raised = by_name["bad_nets.py:raises"].traceback
    assert raised.startswith("Traceback") and f'{user_files / "bad_nets.py"}", line 6' in raised
    assert raised.rstrip().endswith("RuntimeError: broken on purpose")
    good = by_name["bad_nets:good"]
    assert good.status == "ok" and identity.MODEL_DIGEST.fullmatch(good.job.model_digest)
    source = good.variant_source
    assert (source.spec, source.target) == ("bad_nets:good", "bad_nets:good")
    assert Path(source.file) == user_files / "bad_nets.py"
    assert source.sha256 == hashlib.sha256((user_files / "bad_nets.py").read_bytes()).hexdigest()
    assert good.train_samples == 300  # the data reshaped to the model's 28x28 input


@pytest.mark.slow  # two frameworks and flax started: 20-30 s
@pytest.mark.skipif(
    not {"jax", "torch"} <= set(INSTALLED), reason="needs the jax and torch backends"
)
def test_torch_and_flax_modules_run_on_their_backend_and_are_skipped_elsewhere(tmp_path):
    results = tmp_path / "runs"
    specs = "examples/torch_module.py:torch_mlp,examples/flax_module.py:flax_mlp"
    out = run_cli(
        "run", "--variant", specs, "-b", "jax", "-b", "torch", "--results-dir", str(results),
        *TINY,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    status = {(r.variant, r.backend): (r.status, r.error) for r in only_run(results).records}
    assert status == {
        ("torch_module.py:torch_mlp", "torch"): ("ok", None),
        ("flax_module.py:flax_mlp", "jax"): ("ok", None),
        ("torch_module.py:torch_mlp", "jax"): (
            "skipped", "variant torch_module.py:torch_mlp supports torch only (its declared "
            "backends)",
        ),
        ("flax_module.py:flax_mlp", "torch"): (
            "skipped", "variant flax_module.py:flax_mlp supports jax only (its declared backends)"
        ),
    }  # fmt: skip


# --------------------------------------------------------------------------------- plugins
def plugin_site(folder: Path) -> Path:
    """An installed plugin distribution as pip leaves it in site-packages: its module, and a
    dist-info whose entry points name one good variant and one that fails to import."""
    site = folder / "site"
    info = site / "acme_variants-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-variants\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[mnist_bench.variants]\nacme-wide = acme_variants:wide\nacme-broken = acme_broken:build\n"
    )
    (site / "acme_variants.py").write_text(nets(48, name="wide", comment="a plugin's net"))
    (site / "acme_broken.py").write_text('raise ImportError("acme_broken needs acme-core")\n')
    return site


def test_list_shows_plugins_with_their_source_and_the_broken_one_with_its_error(tmp_path):
    env = {"PYTHONPATH": str(plugin_site(tmp_path))}
    out = run_cli("list", "--no-probe", env=env)
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "| acme-wide |" in text and "| acme-broken |" in text
    assert "slim dense (plugin acme-variants 0.1: acme_variants:wide)" in text
    assert "BROKEN: importing acme_broken raised ImportError: acme_broken needs acme-core" in text
    broken = run_cli("run", "--variant", "acme-broken", "-b", BACKEND, *TINY, env=env)
    assert broken.returncode == 2 and broken.stderr.count("\n") == 1, broken.stderr
    assert "variant 'acme-broken': importing acme_broken raised ImportError" in broken.stderr


# ------------------------------------------------------------------- a wheel, a fresh venv
@pytest.mark.slow
def test_from_a_wheel_a_users_file_and_a_plugin_run_without_touching_the_package(tmp_path):
    import importlib.util

    wheels = tmp_path / "wheels"
    plugin = tmp_path / "acme"
    plugin.mkdir()
    (plugin / "pyproject.toml").write_text(
        textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "acme-variants"
        version = "0.1"

        [tool.setuptools]
        py-modules = ["acme_variants", "acme_broken"]

        [project.entry-points."mnist_bench.variants"]
        acme-wide = "acme_variants:wide"
        acme-broken = "acme_broken:build"
        """)
    )
    (plugin / "acme_variants.py").write_text(nets(48, name="wide", comment="a plugin's net"))
    (plugin / "acme_broken.py").write_text('raise ImportError("acme_broken needs acme-core")\n')
    for source in (ROOT, plugin):
        built = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
             "--no-build-isolation", "--quiet", "--wheel-dir", str(wheels)],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
        )  # fmt: skip
        assert built.returncode == 0, built.stderr
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    # The dependencies (Keras, the frameworks, pip) from where this interpreter has them.
    deps = {str(Path(importlib.util.find_spec(m).origin).parent.parent) for m in ("keras", "pip")}
    (site / "deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
         *map(str, wheels.glob("*.whl"))],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr

    def package_files() -> dict[str, str]:
        return {
            str(p.relative_to(site)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((site / "mnist_bench").rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts
        }

    before = package_files()
    work = tmp_path / "work"
    work.mkdir()
    (work / "my_nets.py").write_text(nets(32))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KERAS_BACKEND")}
    mnist = venv / "bin" / "mnist-bench"
    listed = subprocess.run(
        [mnist, "list", "--no-probe"], capture_output=True, text=True, cwd=work, env=env,
        timeout=300,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    text = " ".join(listed.stdout.split())
    assert "slim dense (plugin acme-variants 0.1: acme_variants:wide)" in text
    assert "BROKEN: importing acme_broken raised ImportError: acme_broken needs acme-core" in text
    # The broken plugin breaks neither `list` nor a run that does not name it.
    ran = subprocess.run(
        [mnist, "run", "--variant", "./my_nets.py:slim", "--variant", "acme-wide",
         "-b", BACKEND, "--results-dir", "runs", *TINY],
        capture_output=True, text=True, cwd=work, env=env, timeout=900,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    run = only_run(work / "runs")
    assert {(r.variant, r.status) for r in run.records} == {
        ("my_nets.py:slim", "ok"),
        ("acme-wide", "ok"),
    }
    mine = next(r for r in run.records if r.variant == "my_nets.py:slim")
    assert mine.variant_source.spec == "./my_nets.py:slim"
    assert Path(mine.variant_source.file) == work / "my_nets.py"
    assert Path(mnist_bench_location(python, work)).is_relative_to(site)
    assert package_files() == before


def mnist_bench_location(python: Path, cwd: Path) -> str:
    return subprocess.check_output(
        [python, "-c", "import mnist_bench; print(mnist_bench.__file__)"], text=True, cwd=cwd
    ).strip()
