"""Hook for a user's own keys: add them here so that YAML files and --opts may set them.

Example::

    def add_custom_config(cfg):
        cfg.MY_PROJECT = CfgNode()
        cfg.MY_PROJECT.ALPHA = 0.5
"""


def add_custom_config(cfg) -> None:
    """Called by `get_cfg()` after the defaults are built; adds nothing by default."""
