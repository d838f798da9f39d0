"""The API's data models (attrs classes and enums), generated from openapi.yaml.

Each name is imported on first use, so `import crownest.models` costs nothing
until a model is touched. Type checkers see every name as the class it is.
"""

from typing import TYPE_CHECKING

from ._generated.models import __all__ as __all__

if TYPE_CHECKING:
    from ._generated.models import *  # noqa: F403  (the generated list, each name typed)
else:
    from typing import Any

    from ._generated import models as _models

    def __getattr__(name: str) -> Any:
        return getattr(_models, name)


def __dir__() -> list[str]:
    return list(__all__)
