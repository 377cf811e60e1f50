"""YAML files read with the position of every node, and one way to report what is wrong in them.

A layer below both config and inventory (which each read YAML), so that neither imports the
other for it:
- `marked`: a document loaded as MarkedMap/MarkedSeq (plain dict/list carrying the
  file:line:column of every key, value and item): playbooks, alerting files, vars files,
  extra vars. Also the shared guards (nesting, alias bombs, huge numbers, file size and
  encoding: `read_text`) and the one YAML error formatter, `syntax_error`.
- `nodes`: a document kept as PyYAML nodes whose values are built on demand (`YamlDocument`):
  inventories, whose hosts and groups are walked node by node.
"""
