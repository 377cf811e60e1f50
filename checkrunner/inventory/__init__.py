"""Ansible-compatible inventory: YAML and INI files, directories, host lists, host patterns, vars.

Sources (`load_inventories(["inventory/prod.yml", "web1,web2"], playbook_dir)`):

- a YAML file (`all: {hosts: {...}, children: {...}, vars: {...}}`), an INI file
  (`[web]`, `[web:children]`, `[web:vars]`, `host key=value`), or the JSON printed by
  `ansible-inventory --list`; the format is told by content, the extension only breaks ties;
- a directory: every file in it and below (sorted), skipping group_vars/, host_vars/,
  hidden files and Ansible's ignored extensions (.bak, .retry, .md, .cfg, ~ ...);
- a comma-separated host list: `web1,web2:2222` or `web1,` for a single host.

Host entries take ranges in both formats: `web[01:20].example.com`, `db-[a:c]`, `[0:10:2]`.
INI values are Python literals when they parse as one (`2222`, `True`, `[1, 2]`), text
otherwise, both inline and in [group:vars] (as ansible-core really does, despite its docs);
in [group:vars] a trailing ` # comment` after a plain-text value is dropped.
`group_vars/` and `host_vars/` beside each inventory source and beside the playbook are read
(the playbook's win): for each name only the first of `NAME` (a file, or a directory of
such files merged in sorted order), `NAME.yml`, `NAME.yaml`, `NAME.json` that exists, as
Ansible does. The merge order is Ansible's; see `build.py`. One entry stands for at most
MAX_HOSTS_PER_ENTRY hosts; a host listed again with another `:port` keeps its first.

With no sources the inventory is empty and only the implicit localhost exists: like
Ansible, the patterns `localhost`, `127.0.0.1` and `::1` resolve to one implicit host
(connection local, the current Python, named by the first of them asked for) when the
inventory does not define them, and `all` never includes it.

Connection settings a Host reads from its variables (Ansible's names; first one set wins):

=====================  ==============================================================
Host property          variables
=====================  ==============================================================
address                ansible_host, ansible_ssh_host; else the inventory name
port                   ansible_port, ansible_ssh_port (int 1-65535; None = default)
user                   ansible_user, ansible_ssh_user
password               ansible_password, ansible_ssh_pass, ansible_ssh_password
connection             ansible_connection: 'local' or 'ssh' ('paramiko', 'paramiko_ssh'
                       and 'smart' mean ssh); default 'ssh', 'local' for implicit localhost;
                       any other value as written (winrm ...: unreachable when selected)
python_interpreter     ansible_python_interpreter; default 'python3' ('auto*' -> python3)
become                 ansible_become (yes/no, true/false, 1/0); default False
become_user            ansible_become_user; default 'root'
become_method          ansible_become_method; default 'sudo'
become_password        ansible_become_password, ansible_become_pass
private_key_file       ansible_ssh_private_key_file, ansible_private_key_file (~ expanded)
ssh_common_args        ansible_ssh_common_args
ssh_extra_args         ansible_ssh_extra_args
host_key_checking      ansible_host_key_checking, ansible_ssh_host_key_checking; None = unset
timeout                ansible_timeout, ansible_ssh_timeout (seconds or a duration)
=====================  ==============================================================

A property raises ConfigError (with the variable's file:line) for a value it cannot use;
`Host.check_ssh_settings()` checks them all, and refuses host and user names OpenSSH refuses.
Variables are not templated here: render `host.vars` first and use
`dataclasses.replace(host, vars=rendered)` when connection variables hold `{{ ... }}`.

Host patterns (`Inventory.select`): `all`, `*`, `a:b` / `a,b` (union), `a:&b`
(intersection), `a:!b` (exclusion), globs (`web*`, `*.example.com`), `~regex` (matched
from the start), group or host names, and slices `g[0]`, `g[-1]`, `g[0:2]` (inclusive),
`g[1:]`. Unions are evaluated in order, then intersections, then exclusions. Parts that
match nothing are collected in `Inventory.unmatched_patterns` for the caller to warn about;
a malformed pattern (unbalanced brackets, a bad subscript or regex) is a ConfigError.
"""

from checkrunner.errors import HostEntryError
from checkrunner.inventory.hostnames import expand_host_ranges, parse_host_entry
from checkrunner.inventory.inventory import Inventory, Selection
from checkrunner.inventory.loader import detect_format, load_inventories
from checkrunner.inventory.model import LOCALHOST_NAMES, Group, Host, InventoryWarning, parse_bool
from checkrunner.inventory.patterns import split_pattern

__all__ = [
    "LOCALHOST_NAMES",
    "Group",
    "Host",
    "HostEntryError",
    "Inventory",
    "InventoryWarning",
    "Selection",
    "detect_format",
    "expand_host_ranges",
    "load_inventories",
    "parse_bool",
    "parse_host_entry",
    "split_pattern",
]
