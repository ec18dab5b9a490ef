"""The model zoo: trained models that ship with unflat (``unflat models``), and models you pack yourself.

* ``unflat.zoo.format``: the two files of a model (NAME.safetensors + NAME.json) and their checks.
* ``unflat.zoo.load``: ``load_model(NAME) -> LoadedRun``; ``zoo:NAME`` works wherever a run directory does.
* ``unflat.zoo.pack``: ``pack_run(RUN, NAME, DIR)`` (`unflat models pack`).
* ``unflat.zoo.args``: ``--model NAME`` on the commands that load a run.
* ``unflat.zoo.commands``: the `unflat models` command.

Submodules are imported on use, so `unflat --help` stays light.
"""
