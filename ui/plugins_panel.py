"""The left column's top: the plugin tables and the backend list (unavailable ones greyed, with the reason)."""

from __future__ import annotations

from typing import Any

GREY = (130, 130, 130)


class PluginsPanel:
    """Owns `plugins_box` and `backend_box`; `fill` rebuilds both from the app's registry."""

    def __init__(self, app: Any) -> None:
        self.app, self.dpg = app, app.dpg
        self.unavailable: dict[str, str] = {}

    def build(self) -> None:
        """The widgets (inside the current container)."""
        dpg = self.dpg
        dpg.add_text("Plugins")
        dpg.add_group(tag="plugins_box")
        dpg.add_button(label="Rescan plugins.d", tag="rescan", callback=lambda: self.app.rescan())
        dpg.add_separator()
        dpg.add_text("Backend (for captures)")
        dpg.add_group(tag="backend_box")
        dpg.add_text("", tag="credits")

    def fill(self) -> None:
        """Rebuild the tables and the backend list."""
        dpg = self.dpg
        for box in ("plugins_box", "backend_box"):
            dpg.delete_item(box, children_only=True)
        listing = self.app.registry.listing(self.app.settings)
        for kind in ("emotions", "backends"):
            with dpg.table(parent="plugins_box", header_row=True, tag=f"plugins_{kind}", borders_innerH=True,
                           policy=dpg.mvTable_SizingFixedFit):
                for column in (kind, "status", "source"):
                    dpg.add_table_column(label=column)
                for row in listing[kind]:
                    with dpg.table_row():
                        name = dpg.add_text(row["id"], tag=f"plugin_{kind}_{row['id']}")
                        status = dpg.add_text(row["status"])
                        dpg.add_text(short_source(row["source"]))
                        if row["status"] != "loaded":
                            for item in (name, status):
                                if row["status"] == "failed":
                                    dpg.bind_item_theme(item, "theme_failed")
                                with dpg.tooltip(item):
                                    dpg.add_text(row["reason"] or row["status"], wrap=420)
        self.unavailable = {}
        for entry in sorted(self.app.registry.backends.values(), key=lambda e: e.id):
            ok, reason = self.app.synthesizer.availability(entry)
            # Not disabled: a disabled item shows no tooltip and ignores clicks, and a user deserves the reason.
            item = dpg.add_selectable(label=f"{entry.id}  ({entry.label})" if ok else
                                      f"{entry.id}: unavailable (hover to see why)",
                                      parent="backend_box", tag=f"backend_{entry.id}",
                                      default_value=entry.id == self.app.backend_id,
                                      callback=lambda s, v, u: self.app.choose_backend(u), user_data=entry.id)
            if not ok:
                self.unavailable[entry.id] = reason
                dpg.bind_item_theme(item, "theme_grey")
                with dpg.tooltip(item, tag=f"backend_{entry.id}_tooltip"):
                    dpg.add_text(f"unavailable: {reason}", wrap=420)
        if "auto" not in self.app.registry.backends:
            dpg.add_selectable(label="auto  (best available)", parent="backend_box", tag="backend_auto",
                               default_value=self.app.backend_id == "auto",
                               callback=lambda s, v, u: self.app.choose_backend(u), user_data="auto")

    def select(self, backend_id: str) -> None:
        """Show `backend_id` as the selected one."""
        for entry in list(self.app.registry.backends) + ["auto"]:
            if self.dpg.does_item_exist(f"backend_{entry}"):
                self.dpg.set_value(f"backend_{entry}", entry == backend_id)


def short_source(source: str) -> str:
    """A plugin's source for a narrow column: the end of a long path, and the home folder as ~."""
    from ui.log import shorter_paths

    source = shorter_paths(source)
    return source if len(source) < 30 else "..." + source[-27:]
