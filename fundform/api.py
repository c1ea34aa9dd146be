"""The Python API's public path, kept where the documentation and users' scripts import it (`fundform.api.Run`,
`fundform.api.comparison`): the module lives with the other ways in, in fundform/interfaces/api.py."""

from fundform.interfaces.api import *  # noqa: F403
from fundform.interfaces.api import __all__  # noqa: F401
