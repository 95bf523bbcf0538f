"""Write a built network as one standalone, readable ``model.py`` that imports only torch.

:func:`network_source` turns any ``torch.nn.Module`` tree into the source of a module that defines
every class the network needs and ``build_model()``, which returns a network with exactly the
original's ``state_dict()`` keys, shapes and dtypes and the same forward computation (the weights
are not in the file: load them with ``load_state_dict``). Nothing here knows a search space: a new
space needs no edits.

How the network is written:

* **torch built-ins** (a class from ``torch``) become constructor calls whose arguments are read
  back from the instance's same-named attributes (``bias`` from ``module.bias is not None``),
  defaults left out; ``nn.Sequential``/``nn.ModuleList``/``nn.ModuleDict`` take their children.
  Each call is evaluated here (on the meta device) and compared with the original (class,
  ``repr``, state-dict shapes and dtypes, plain attributes); a mismatch raises :class:`ExportError`.
* **custom classes** (any class not from torch, the standard library or an installed third-party
  package: archsearch's own, a test's, a script's) are written once, deriving from one shared base
  ``Module`` whose constructor sets every keyword argument as an attribute. Their methods are
  copied verbatim from the original source, starting from ``forward`` and adding every method,
  property, static or class method whose name the copied code reads as an attribute, until
  nothing new is read; ``__init__`` is not copied. The globals of the copied code (found with
  :mod:`dis`, nested code included) are written too: torch and standard-library modules and
  objects as imports, custom module-level functions and plain classes as their source, constants
  as literals. Anything else raises :class:`ExportError`.
* **instance attributes** of a custom module (its ``__dict__`` minus nn.Module's bookkeeping) are
  constructor arguments when they can be written as literals (numbers, strings, containers of
  them, torch functions, custom functions); one that cannot is left out when no copied code reads
  it (found with :mod:`ast`) and raises :class:`ExportError` when some does.
* ``build_model()`` is one nested constructor expression; parameters or modules reachable under
  two names are tied again after it, as ``model.decoder.weight = model.embedding.weight``.

The result is compiled, executed and built here (on the meta device) and its state-dict layout
compared with the original's before it is returned.

Custom code is anything not from torch, the standard library or an installed third-party package
(site-/dist-packages), plus archsearch wherever it is installed; third-party code raises
:class:`ExportError` since the file may import only torch and the standard library.

Limits: copied code that constructs a custom module class raises :class:`ExportError` (the written
class has the generic constructor, not the original one; construction through ``cls(...)`` or an
attribute is not detected). Two written names that clash get a suffix (``Identity_2``), renamed in
the copied code too. torch modules whose constructor arguments are not attributes (``nn.LSTM``,
``nn.TransformerEncoderLayer``) and modules with forward hooks cannot be written.

Modules: ``origins`` (constants, where code comes from), ``printer`` (expressions, pretty printer),
``source`` (reading code), ``state`` (the file being written), the writer's mixins ``values``,
``copied``, ``classes`` and ``tree``, ``writer`` (putting the file together) and ``network``
(:func:`network_source`, which also checks the result).
"""

from __future__ import annotations

from archsearch.deploy.codegen.network import network_source

__all__ = ["network_source"]
