# Helpers shared by the check modules (Ansible's module_utils). Code that runs on targets:
# standard library only, Python 3.6 syntax, never imports checkrunner or a check module.
# A module imports them relatively (`from ._utils import certs`); a batch ships only the
# helpers its modules import (checkrunner/catalog.py finds them when _catalog.json is made).
