"""Every public module, function, class and method of mairl and envs has a docstring.

"Public" means: a module whose dotted path has no underscore-prefixed part; in it,
the names listed in its ``__all__`` when it has one, otherwise every function and
class defined in that module (``obj.__module__`` is the module) whose name does not
start with an underscore; and, for each such class defined there, every attribute
of its own (functions, static and class methods, properties) whose name does not
start with an underscore. A method that overrides a documented one inherits its
docstring (``inspect.getdoc``), as in the API reference.
"""

import importlib
import inspect
import pkgutil

import pytest

import envs
import mairl

OPTIONAL = {"envs.jaxmarl": "jaxmarl", "envs.brax_games": "brax"}


def public_modules() -> list[str]:
    """Dotted names of every public module of mairl and envs."""
    names = []
    for package in (mairl, envs):
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                names.append(info.name)
    return sorted(names)


def undocumented(module) -> list[str]:
    """The public functions, classes and methods of ``module`` without a docstring."""
    name = module.__name__
    if hasattr(module, "__all__"):
        candidates = list(module.__all__)
    else:
        candidates = [
            attr for attr, obj in vars(module).items()
            if not attr.startswith("_")
            and (inspect.isfunction(obj) or inspect.isclass(obj))
            and getattr(obj, "__module__", None) == name
        ]
    missing = [] if module.__doc__ else ["<module docstring>"]
    for attr in candidates:
        obj = getattr(module, attr)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if not (obj.__dict__.get("__doc__") if inspect.isclass(obj) else inspect.getdoc(obj)):
            missing.append(attr)
        if inspect.isclass(obj) and obj.__module__ == name:
            for member, value in vars(obj).items():
                if member.startswith("_"):
                    continue
                if isinstance(value, property):
                    documented = value.__doc__ or (value.fget and value.fget.__doc__)
                elif isinstance(value, (staticmethod, classmethod)) or inspect.isfunction(value):
                    documented = inspect.getdoc(getattr(obj, member))
                else:
                    continue
                if not documented:
                    missing.append(f"{attr}.{member}")
    return missing


@pytest.mark.parametrize("module_name", public_modules())
def test_public_names_have_docstrings(module_name):
    if module_name in OPTIONAL:
        pytest.importorskip(OPTIONAL[module_name])
    module = importlib.import_module(module_name)
    missing = undocumented(module)
    assert not missing, f"{module_name}: no docstring for {', '.join(missing)}"
