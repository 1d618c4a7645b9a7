"""The models' parameter tables drive __init__, the checks, the docstrings and the command line."""

import ast
from pathlib import Path

import pytest

import zse
from zse.cli.options import COMMON_FLAGS, build_parser, model_flags, python_only_params
from zse.models import REGISTRY
from zse.models.params import Choice, Int, Param, Real

PACKAGE = Path(zse.__file__).parent


def _subparser(parser, command):
    return parser._subparsers._group_actions[0].choices[command]


def _flags(subparser) -> set:
    return {o for action in subparser._actions for o in action.option_strings}


def _expected_flags() -> set:
    """Every model-parameter flag, computed from the tables alone."""
    return {
        row.option
        for cls in REGISTRY.values()
        for row in cls.parameters
        if row.cli in ("main", "advanced")
    }


@pytest.mark.parametrize("command", ["denoise", "fit", "demo"])
def test_parser_has_exactly_the_flags_of_the_tables(command):
    sub = _subparser(build_parser(), command)
    model_groups = [g for g in sub._action_groups if "model parameters" in (g.title or "").lower()]
    in_groups = {o for g in model_groups for a in g._group_actions for o in a.option_strings}
    expected = _expected_flags()
    expected |= {
        "--no-" + f[2:]
        for cls in REGISTRY.values()
        for row in cls.parameters
        if row.cli in ("main", "advanced") and isinstance(row.default, bool)
        for f in [row.option]
    }
    assert in_groups == expected
    assert expected <= _flags(sub)


def test_every_parameter_has_a_flag_or_is_named_in_the_epilog():
    sub = _subparser(build_parser(), "denoise")
    flags, epilog = _flags(sub), sub.epilog
    for cls in REGISTRY.values():
        for row in cls.parameters:
            if row.cli in ("main", "advanced"):
                assert row.option in flags, (cls.__name__, row.name)
            elif row.cli == "common":
                assert COMMON_FLAGS[row.name].split("/")[-1] in flags
                assert f"{row.name} ({COMMON_FLAGS[row.name]})" in epilog
            else:
                assert row.name in python_only_params() and row.name in epilog


def test_advanced_flags_parse_but_stay_out_of_the_main_help(capsys):
    parser = build_parser()
    args = parser.parse_args(["denoise", "x.tif", "-o", "o", "--updates", "exact"])
    assert args.updates == "exact"
    main_help = _subparser(parser, "denoise").format_help()
    full_help = _subparser(build_parser(advanced=True), "denoise").format_help()
    advanced = [name for name, e in model_flags().items() if e["place"] == "advanced"]
    assert "updates" in advanced and "n_states" not in advanced
    for name in advanced:
        flag = "--" + name.replace("_", "-")
        assert flag not in main_help and flag in full_help
    assert "--n-states" in main_help
    with pytest.raises(SystemExit):
        parser.parse_args(["denoise", "--help-advanced"])
    assert "--updates" in capsys.readouterr().out


def test_help_states_each_models_default_from_the_table():
    help_text = _subparser(build_parser(), "denoise").format_help().replace("\n", " ")
    help_text = " ".join(help_text.split())
    assert "(sssc; default 32)" in help_text  # n_states
    assert "default sssc 100, pmm gpmm 50" in help_text  # max_iter


@pytest.mark.parametrize("cls", list(REGISTRY.values()))
def test_init_signature_docstring_and_defaults_follow_the_table(cls):
    names = [row.name for row in cls.parameters]
    assert cls._param_names() == names
    model = cls()
    assert model.get_params() == {row.name: row.default for row in cls.parameters}
    model._check_params()  # the defaults pass their own checks
    for row in cls.parameters:
        assert f"{row.name} : " in cls.__doc__, row.name
    assert "<parameters>" not in cls.__doc__


@pytest.mark.parametrize("cls", [zse.SSSC, zse.PMM, zse.GPMM])
def test_each_row_check_refuses_a_bad_value(cls):
    for row in cls.parameters:
        bad = {Int: -7, Real: float("nan"), Choice: "no-such-choice"}.get(type(row.check))
        if bad is None:
            continue
        with pytest.raises(ValueError, match=row.name):
            cls(**{row.name: bad})._check_params()


def test_adding_a_row_gives_a_flag_a_check_and_a_docstring_entry(monkeypatch):
    """A model with one more row: nothing else is edited."""

    class Wider(zse.PMM):
        """A PMM with one more parameter.

        Parameters
        ----------
        <parameters>
        """

        parameters = (
            *zse.PMM.parameters,
            Param("n_extra", 3, Int(1, 9), "an extra setting for the test"),
        )

    monkeypatch.setitem(REGISTRY, "wider", Wider)
    parser = build_parser()
    args = parser.parse_args(["denoise", "x.tif", "-o", "o", "--model", "wider", "--n-extra", "5"])
    assert args.n_extra == 5
    assert "an extra setting for the test (wider; default 3)" in " ".join(
        _subparser(parser, "denoise").format_help().split()
    )
    assert Wider(n_extra=5).n_extra == 5 and Wider().n_extra == 3
    with pytest.raises(ValueError, match="n_extra must be an int in \\[1, 9\\]"):
        Wider(n_extra=10)._check_params()
    assert "n_extra : int" in Wider.__doc__


def test_no_module_outside_models_probes_a_model_attribute():
    """hasattr/getattr/setattr on a model happen only inside zse.models (the pipeline asks
    through methods)."""
    model_names = {"model", "fitted", "estimator", "given", "cls"}
    found = []
    for path in PACKAGE.rglob("*.py"):
        if "models" in path.relative_to(PACKAGE).parts:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("hasattr", "getattr", "setattr")
                and node.args
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id in model_names
            ):
                found.append(f"{path.name}:{node.lineno}")
    assert not found


def test_foreign_model_is_wrapped_not_probed():
    class Halves:
        def fit(self, patches):
            self.n_features_in_ = patches.shape[1]
            return self

        def estimate(self, patches):
            return patches / 2

    image = zse.data.synthetic_tem(seed=0)[0][:20, :20]
    out = zse.reconstruct(image, Halves(), patch_size=3, stats="mean")
    assert isinstance(out.model, Halves) and out.model.n_features_in_ == 9
    assert abs(out["mean"] - image / 2).max() < 1e-9


def test_no_binding_takes_more_than_ten_arguments():
    """The compiled entry points take option structs whole (bindings.hpp), not their fields."""
    stub = ast.parse((PACKAGE / "_core.pyi").read_text())
    too_many = []
    for node in ast.walk(stub):
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("__"):
            args = node.args
            n = len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs)
            n -= 1 if args.args and args.args[0].arg == "self" else 0
            if n > 10:
                too_many.append(f"{node.name} ({n})")
    assert not too_many


def test_option_structs_refuse_unknown_fields():
    from zse import _core

    assert _core.SearchOptions(n_parents=3).n_parents == 3
    assert _core.SearchOptions().n_children == 2  # the struct's own default
    with pytest.raises(AttributeError):
        _core.SearchOptions(n_parent=3)
