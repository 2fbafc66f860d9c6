"""The main window: scenario browser, Run/Stop, the timeline, source and details, the status bar.

It owns at most one live run (ui.live_run) and one trace on display. Everything slow happens
elsewhere: the program in a child process, its stream read by asyncio on the qasync loop, so the
GUI thread only decodes batches, refreshes the timeline (coalesced) and answers the user.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QColor,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
    QPalette,
)
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QSplitter,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from loopscope.scenarios import Scenario, catalog
from loopscope.tracer.events import Code
from loopscope.tracer.formats import IMAGE_FORMATS, NATIVE_SUFFIX
from loopscope.tracer.held_time import cut_held_time
from loopscope.tracer.trace import Trace
from loopscope.ui.details_pane import DetailsPane, format_duration
from loopscope.ui.diagnostics import Diagnostics
from loopscope.ui.icons import toolbar_icon
from loopscope.ui.live_run import LiveRun
from loopscope.ui.overview import OverviewStrip
from loopscope.ui.scenario_browser import ScenarioBrowser
from loopscope.ui.settings import THEMES, AppSettings
from loopscope.ui.source_pane import SourcePane
from loopscope.ui.stepping import NarrationBar, StepController
from loopscope.ui.theme import Theme
from loopscope.ui.timeline import TimelineWidget

if TYPE_CHECKING:
    from loopscope.tracer.runner import RunResult
    from loopscope.tracer.spans import SpanBuilder
    from loopscope.tracer.target import Target
    from loopscope.ui.trace_loading import Loader, TraceLoading

APP_NAME = "Loopscope"
TRACE_FILTER = f"Loopscope traces (*{NATIVE_SUFFIX});;All files (*)"
IMAGE_FILTERS = {suffix: f"{title} (*{suffix})" for suffix, title in IMAGE_FORMATS.items()}
EXPORT_SIZE = (1600, 900)
_SPLITTERS = ("main_splitter", "center_splitter", "bottom_splitter")
# status value -> what the status bar says
_STATE_LABELS = {
    "idle": "idle",
    "running": "running",
    "ok": "finished",
    "stopped": "stopped",
    "error": "error",
    "crashed": "error",
    "timeout": "error",
    "protocol-error": "error",
}

SHORTCUTS_HELP = """
<h3>Keyboard shortcuts</h3>
<table cellpadding=3>
<tr><td><b>F5</b></td><td>Run the selected scenario</td></tr>
<tr><td><b>Shift+F5</b></td><td>Stop the run</td></tr>
<tr><td><b>Ctrl+O</b></td><td>Open a trace</td></tr>
<tr><td><b>Ctrl+Shift+O</b></td><td>Run a Python script</td></tr>
<tr><td><b>Ctrl+S</b></td><td>Save the trace</td></tr>
<tr><td><b>Ctrl+E</b></td><td>Export the timeline as PNG, SVG or PDF</td></tr>
<tr><td><b>Ctrl+Shift+E</b></td><td>Export Perfetto (Chrome trace) JSON</td></tr>
<tr><td><b>Ctrl+0</b> or <b>F</b></td><td>Zoom to fit</td></tr>
<tr><td><b>Ctrl+L</b> or <b>End</b></td><td>Follow the live edge (while a run runs)</td></tr>
<tr><td><b>Ctrl+Q</b></td><td>Quit</td></tr>
<tr><td colspan=2><br><b>Stepping</b></td></tr>
<tr><td><b>F6</b></td><td>Step through the selected scenario (starts it held)</td></tr>
<tr><td><b>F10</b> or <b>N</b></td><td>Step to the next narrated event (pauses a run)</td></tr>
<tr><td><b>→ / ←</b></td><td>Cursor to the next / previous step (on the timeline)</td></tr>
<tr><td><b>Shift+F10</b> or <b>Shift+N</b></td><td>Step back</td></tr>
<tr><td><b>T / Shift+T</b></td><td>Next / previous switch to another lane</td></tr>
<tr><td><b>I / Shift+I</b></td><td>Next / previous I/O wait or wake</td></tr>
<tr><td><b>Home / End</b></td><td>First / last step (on the timeline; a recording, or a held
run)</td></tr>
<tr><td><b>F8</b> or <b>C</b></td><td>Continue (a recording plays back)</td></tr>
<tr><td><b>F7</b>, <b>P</b> or <b>Pause</b></td><td>Pause the run or the playback</td></tr>
<tr><td><b>Click the time axis</b></td><td>Cursor to the step at that time</td></tr>
<tr><td colspan=2><br><b>On the timeline</b></td></tr>
<tr><td><b>W / S</b></td><td>Zoom in / out</td></tr>
<tr><td><b>A / D</b></td><td>Pan left / right</td></tr>
<tr><td><b>Mouse wheel</b></td><td>Zoom around the cursor</td></tr>
<tr><td><b>Drag</b></td><td>Pan</td></tr>
<tr><td><b>Shift+wheel</b></td><td>Scroll the lanes</td></tr>
<tr><td><b>Click</b></td><td>Select a span (or a lane, on its name)</td></tr>
</table>
"""

ABOUT_TEXT = """
<h3>Loopscope</h3>
<p>See concurrency: a live timeline of task switches, I/O waits and wake-ups for generators,
greenlets and gevent, select servers, asyncio and aiohttp.</p>
<p>Each run happens in its own process; nothing you run can freeze this window.</p>
"""


class MainWindow(QMainWindow):
    closed = Signal()  # the window has closed for good (any child already stopped)

    def __init__(self, settings: AppSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or AppSettings.default()
        self.trace: Trace | None = None
        self.trace_path: str | None = None
        self.status = "idle"
        self.live = LiveRun(self)
        self.error_box: QMessageBox | None = None
        self.note_box: QMessageBox | None = None
        self._closing = False
        self._close_task: asyncio.Task[None] | None = None
        self._last_script: Target | None = None
        self.stepping = StepController(self)
        self._shown_held = False

        self.setWindowTitle(APP_NAME)
        self.setAcceptDrops(True)
        self.resize(1400, 860)
        self._build_panes()
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_status_bar()
        self._connect()
        self.apply_theme(self.settings.theme)
        self._restore_layout()
        self._update_actions()
        self._update_status()

    # -- construction ---------------------------------------------------------------------

    def _build_panes(self) -> None:
        self.browser = ScenarioBrowser(catalog.all_scenarios())
        self.timeline = TimelineWidget()
        self.source = SourcePane()
        self.details = DetailsPane()
        self.output = QPlainTextEdit()
        self.output.setReadOnly(True)
        self.output.setMaximumBlockCount(5000)
        self.problems = QPlainTextEdit()
        self.problems.setReadOnly(True)
        self.tabs = QTabWidget()
        # the Tasks view, the findings and their marks on the timeline (ui.diagnostics)
        self.diagnostics = Diagnostics(self.timeline, self.details, self.source,
                                       lambda: self.tabs.setCurrentWidget(self.details), self)
        self.problems_pane = QSplitter(Qt.Orientation.Vertical)
        self.problems_pane.addWidget(self.diagnostics.findings)
        self.problems_pane.addWidget(self.problems)
        self.tabs.addTab(self.details, "Details")
        self.tabs.addTab(self.diagnostics.tasks, "Tasks")
        self.tabs.addTab(self.output, "Output")
        self.tabs.addTab(self.problems_pane, "Problems")

        self.bottom_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.bottom_splitter.addWidget(self.source)
        self.bottom_splitter.addWidget(self.tabs)
        self.bottom_splitter.setSizes([600, 400])
        self.narration = NarrationBar()
        timeline_box = QWidget()
        timeline_column = QVBoxLayout(timeline_box)
        timeline_column.setContentsMargins(0, 0, 0, 0)
        timeline_column.setSpacing(0)
        self.overview = OverviewStrip(self.timeline)  # the whole run, with the view's brush
        timeline_column.addWidget(self.overview)
        timeline_column.addWidget(self.timeline, 1)
        timeline_column.addWidget(self.narration)
        self.center_splitter = QSplitter(Qt.Orientation.Vertical)
        self.center_splitter.addWidget(timeline_box)
        self.center_splitter.addWidget(self.bottom_splitter)
        self.center_splitter.setStretchFactor(0, 3)
        self.center_splitter.setStretchFactor(1, 2)
        self.center_splitter.setSizes([500, 300])
        self.main_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.main_splitter.addWidget(self.browser)
        self.main_splitter.addWidget(self.center_splitter)
        self.main_splitter.setStretchFactor(1, 1)
        self.main_splitter.setSizes([300, 1100])
        for name in _SPLITTERS:
            getattr(self, name).setObjectName(name)
            getattr(self, name).setChildrenCollapsible(False)
        self.setCentralWidget(self.main_splitter)

    def _action(self, text: str, slot: object,
                shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None,
                tip: str | None = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(slot)
        return action

    def _build_actions(self) -> None:
        self.run_action = self._action("&Run", self.run_selected, "F5",
                                       "Run the selected scenario (F5)")
        self.stop_action = self._action("&Stop", self.stop_run, "Shift+F5", "Stop the run")
        self.run_script_action = self._action("Run &Script…", self.ask_run_script,
                                              "Ctrl+Shift+O", "Run your own Python script")
        self.open_action = self._action("&Open Trace…", self.ask_open_trace,
                                        QKeySequence.StandardKey.Open)
        self.save_action = self._action("&Save Trace…", self.ask_save_trace,
                                        QKeySequence.StandardKey.Save)
        self.export_image_action = self._action("&Export Image…", self.ask_export_image,
                                                "Ctrl+E")
        self.export_json_action = self._action("Export &Perfetto JSON…", self.ask_export_json,
                                               "Ctrl+Shift+E")
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.zoom_fit_action = self._action("&Zoom to Fit", self.timeline.zoom_to_fit, "Ctrl+0")
        self.follow_action = self._action("&Follow Live Edge", self._on_follow_toggled, "Ctrl+L")
        self.follow_action.setCheckable(True)
        self.library_lanes_action = self._action(
            "Show &Library Lanes", lambda checked: self.timeline.set_fold_library(not checked),
            "Ctrl+Shift+L", "Show asyncio's, aiohttp's and gevent's own lanes one by one "
            "instead of folded into one row")
        self.library_lanes_action.setCheckable(True)
        self.theme_group = QActionGroup(self)
        self.theme_actions: dict[str, QAction] = {}
        for name in THEMES:
            action = QAction(f"{name.title()} Theme", self, checkable=True)
            action.triggered.connect(lambda checked=False, n=name: self.apply_theme(n))
            self.theme_group.addAction(action)
            self.theme_actions[name] = action
        self._build_step_actions()
        self.shortcuts_action = self._action("&Keyboard Shortcuts", self.show_shortcuts, "F1")
        self.about_action = self._action("&About Loopscope", self.show_about)

    def _step_action(self, text: str, slot: object, shortcuts: list[str], tip: str) -> QAction:
        action = self._action(text, slot, None, f"{tip} ({', '.join(shortcuts)})")
        action.setShortcuts([QKeySequence(key) for key in shortcuts])
        return action

    def _build_step_actions(self) -> None:
        stepping = self.stepping
        self.step_through_action = self._step_action(
            "Step &Through", self.step_through_selected, ["F6"],
            "Run the selected scenario held before its first step")
        self.step_action = self._step_action("S&tep", self.step_forward, ["F10", "N"],
                                             "Next narrated step")
        self.step_back_action = self._step_action(
            "Step &Back", lambda: stepping.step_back(), ["Shift+F10", "Shift+N"],
            "Previous step")
        self.cursor_next_action = self._step_action(
            "Cursor to Next Step", lambda: stepping.step(), ["Right"], "Next step")
        self.cursor_previous_action = self._step_action(
            "Cursor to Previous Step", lambda: stepping.step_back(), ["Left"], "Previous step")
        self.next_switch_action = self._step_action(
            "Next S&witch", lambda: stepping.step("switch"), ["T"],
            "Next moment another lane runs")
        self.previous_switch_action = self._step_action(
            "Previous Switch", lambda: stepping.step_back("switch"), ["Shift+T"],
            "Previous moment another lane ran")
        self.next_io_action = self._step_action(
            "Next &I/O Wait or Wake", lambda: stepping.step("io"), ["I"],
            "Next I/O wait, poll or wake")
        self.previous_io_action = self._step_action(
            "Previous I/O Wait or Wake", lambda: stepping.step_back("io"), ["Shift+I"],
            "Previous I/O wait, poll or wake")
        self.first_step_action = self._step_action("&First Step", stepping.first, ["Home"],
                                                   "First step")
        self.last_step_action = self._step_action("&Last Step", stepping.last, ["End"],
                                                  "Last step recorded")
        self.continue_action = self._step_action(
            "&Continue", stepping.continue_, ["F8", "C"],
            "Run on at full speed; a recording plays back")
        self.pause_action = self._step_action("&Pause", stepping.pause, ["F7", "P", "Pause"],
                                              "Hold the run (or the playback) here")
        self.step_actions = [
            self.step_through_action, self.step_action, self.step_back_action,
            self.cursor_next_action, self.cursor_previous_action, self.next_switch_action,
            self.previous_switch_action, self.next_io_action, self.previous_io_action,
            self.first_step_action, self.last_step_action, self.continue_action,
            self.pause_action,
        ]
        # The arrows, Home and End move through the tree, the source and the output when they
        # have focus; they move the cursor only from the timeline.
        timeline_keys = (self.cursor_next_action, self.cursor_previous_action,
                         self.first_step_action, self.last_step_action)
        for action in self.step_actions:
            # Keys work wherever focus is in the window, except where a text field wants them.
            if action in timeline_keys:
                action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
                self.timeline.addAction(action)
            else:
                action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
                self.addAction(action)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.open_action)
        self.recent_menu = QMenu("Open &Recent", self)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addMenu(self.recent_menu)
        file_menu.addAction(self.run_script_action)
        file_menu.addSeparator()
        file_menu.addAction(self.save_action)
        file_menu.addAction(self.export_image_action)
        file_menu.addAction(self.export_json_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        run_menu = bar.addMenu("&Run")
        run_menu.addAction(self.run_action)
        run_menu.addAction(self.stop_action)
        step_menu = bar.addMenu("S&tep")
        step_menu.addAction(self.step_through_action)
        step_menu.addSeparator()
        for action in (self.step_action, self.step_back_action, self.next_switch_action,
                       self.previous_switch_action, self.next_io_action,
                       self.previous_io_action):
            step_menu.addAction(action)
        step_menu.addSeparator()
        for action in (self.first_step_action, self.last_step_action, self.continue_action,
                       self.pause_action):
            step_menu.addAction(action)
        view_menu = bar.addMenu("&View")
        view_menu.addAction(self.zoom_fit_action)
        view_menu.addAction(self.follow_action)
        view_menu.addAction(self.library_lanes_action)
        theme_menu = view_menu.addMenu("&Theme")
        for action in self.theme_actions.values():
            theme_menu.addAction(action)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.shortcuts_action)
        help_menu.addAction(self.about_action)
        self._fill_recent_menu()

    def _build_toolbar(self) -> None:
        toolbar = QToolBar("Run", self)
        toolbar.setObjectName("run_toolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.addAction(self.run_action)
        toolbar.addAction(self.stop_action)
        toolbar.addSeparator()
        for action in (self.step_through_action, self.step_back_action, self.step_action,
                       self.continue_action, self.pause_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        toolbar.addAction(self.zoom_fit_action)
        toolbar.addAction(self.follow_action)
        self.lane_filter = QLineEdit()
        self.lane_filter.setPlaceholderText("Filter lanes")
        self.lane_filter.setToolTip("Show only the lanes whose name or fd contains this; the "
                                    "others fold into the last row")
        self.lane_filter.setClearButtonEnabled(True)
        self.lane_filter.setMaximumWidth(180)
        self.lane_filter.textChanged.connect(self.timeline.set_lane_filter)
        self.timeline.lanes_shown.connect(self.lane_filter.clear)
        toolbar.addWidget(self.lane_filter)
        toolbar.addSeparator()
        self.target_label = QLabel()
        self.target_label.setTextFormat(Qt.TextFormat.PlainText)  # it names what a trace says
        self.target_label.setContentsMargins(8, 0, 8, 0)
        toolbar.addWidget(self.target_label)
        self.addToolBar(toolbar)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.state_label = QLabel()
        self.elapsed_label = QLabel()
        self.events_label = QLabel()
        self.lanes_label = QLabel()
        self.dropped_label = QLabel()
        for label in (self.state_label, self.elapsed_label, self.events_label,
                      self.lanes_label, self.dropped_label):
            label.setTextFormat(Qt.TextFormat.PlainText)  # the status a trace says it ended with
        self.dropped_label.setStyleSheet("color: #c0392b; font-weight: bold")
        for label in (self.state_label, self.elapsed_label, self.events_label, self.lanes_label,
                      self.dropped_label):
            label.setContentsMargins(6, 0, 6, 0)
            bar.addPermanentWidget(label)
        # how far a trace being opened has got (ui.trace_loading); in the bar only meanwhile
        self.loading: TraceLoading | None = None
        self.load_progress = QProgressBar()
        self.load_progress.setRange(0, 1000)
        self.load_progress.setMaximumWidth(160)
        self.load_progress.setTextVisible(False)
        self.load_progress.hide()
        self.elapsed_timer = QTimer(self)
        self.elapsed_timer.setInterval(200)
        self.elapsed_timer.timeout.connect(self._update_status)

    def _connect(self) -> None:
        self.browser.scenario_selected.connect(self._on_scenario_selected)
        self.browser.scenario_activated.connect(lambda s: self.run_scenario(s))
        self.timeline.span_selected.connect(self._on_span_selected)
        self.timeline.lane_selected.connect(self._on_lane_selected)
        self.diagnostics.tasks.lane_activated.connect(self._on_task_lane_activated)
        self.timeline.view_changed.connect(self._sync_follow_action)
        self.timeline.folding_changed.connect(self._on_folding_changed)
        self.stepping.changed.connect(self._sync_held)
        self.stepping.notice.connect(lambda text: self.statusBar().showMessage(text, 5000))
        self.live.events_arrived.connect(self._on_events_arrived)
        self.live.output_line.connect(self.output.appendPlainText)
        self.live.finished.connect(self._on_run_finished)
        self.stepping.moved.connect(self._show_step)
        self.stepping.changed.connect(self._update_actions)
        self.timeline.axis_clicked.connect(self.stepping.seek_time)
        self.narration.speed_chosen.connect(self.stepping.set_speed)

    # -- running --------------------------------------------------------------------------

    def run_selected(self) -> None:
        scenario = self.browser.current
        if scenario is not None:
            self.run_scenario(scenario)
        elif self._last_script is not None:
            self.run_target(self._last_script)
        else:
            self.statusBar().showMessage("Pick a scenario to run first", 4000)

    def run_scenario(self, scenario: Scenario, paused: bool = False) -> None:
        from loopscope.tracer.target import TargetError, resolve_target

        try:
            target = resolve_target(scenario.id)
        except TargetError as exc:
            self.show_error("Cannot run the scenario", str(exc))
            return
        self.run_target(target, paused=paused)

    def ask_run_script(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Run a Python script",
                                              self.settings.last_directory,
                                              "Python scripts (*.py)")
        if path:
            self.run_script(path)

    def run_script(self, path: str) -> None:
        from loopscope.tracer.target import TargetError, resolve_target

        try:
            target = resolve_target(path)
        except TargetError as exc:
            self.show_error("Cannot run the script", str(exc))
            return
        if target.kind != "script":
            self.show_error("Cannot run the file", f"{path} is not a Python script")
            return
        self.settings.last_directory = str(Path(path).parent)
        self._last_script = target
        self.browser.clear_selection()  # no scenario on show
        self.run_target(target)

    def step_through_selected(self) -> None:
        """Runs the selected scenario (or the last script) held before its first step."""
        scenario = self.browser.current
        if scenario is not None:
            self.run_scenario(scenario, paused=True)
        elif self._last_script is not None:
            self.run_target(self._last_script, paused=True)
        else:
            self.statusBar().showMessage("Pick a scenario to step through first", 4000)

    def step_forward(self) -> None:
        """Step: through what is shown, or, with nothing shown, a held run of the selection."""
        if self.trace is None and not self.live.is_running:
            self.step_through_selected()
        else:
            self.stepping.step()

    def run_target(self, target: Target, paused: bool = False) -> None:
        """Starts a scenario or script in a child; the timeline follows it live. Paused: the
        child holds before its first step, and the Step actions let it go."""
        if self.live.is_running:
            self.statusBar().showMessage("A run is in progress; stop it first", 4000)
            return
        self.output.clear()
        self.problems.clear()
        self.details.show_placeholder()  # nothing of the previous run stays on show
        self.tabs.setCurrentWidget(self.details)
        trace = self.live.start(target, paused=paused)
        self._show_trace(trace, live=True, path=None)
        self.source.show_file(_program_file(target.kind, target.value, target.module))
        self.status = "running"
        self.elapsed_timer.start()
        self._update_actions()
        self._update_status()

    def stop_run(self) -> None:
        if self.live.is_running:
            self.statusBar().showMessage("Stopping…", 2000)
            self.live.request_stop()

    def _on_events_arrived(self) -> None:
        self.timeline.refresh()
        self._update_status()  # (and the held state: a held child sends a batch of no events)

    def _on_folding_changed(self, folded: bool) -> None:
        """Library lanes folded: they are out of sight, and stepping passes over them too."""
        self.library_lanes_action.setChecked(not folded)
        self.stepping.mine_only = folded

    def _sync_held(self) -> None:
        """A held program's clock stands still: so do the live edge and the status clock,
        and the actions follow (Continue lets it go)."""
        held = self.stepping.live and self.stepping.held
        self.timeline.hold_live_edge(held)
        if held != self._shown_held:
            self._shown_held = held
            self._update_actions()
            self._show_held_view()

    def _on_run_finished(self, result: RunResult) -> None:
        self.elapsed_timer.stop()
        self.status = result.status
        # Close the spans still open at the end without refolding the whole trace (a refold
        # of a big run would freeze the window for a moment).
        self.timeline.finish_live()
        self.diagnostics.run_finished()
        self.stepping.run_ended()
        retimed = cut_held_time(result.trace)
        if retimed is not result.trace:
            # gevent and select keep real time, so the seconds the run was held while
            # stepping are cut out of it once it is over, as held time is for the others.
            cursor = self.stepping.cursor
            self._show_trace(retimed, live=False, path=None)
            self.stepping.return_to(cursor)
        self.details.show_summary(retimed)
        if result.error:
            self._report_failure(result)
        elif result.notes:
            self._report_notes(result.notes)
        self._update_actions()
        self._update_status()

    def _report_failure(self, result: RunResult) -> None:
        lines = [result.error or "", ""]
        if result.exit_code is not None:
            lines.append(f"exit status: {result.exit_code}")
        if result.stderr.strip():
            lines += ["", "stderr:", result.stderr.rstrip()]
        self.problems.setPlainText("\n".join(lines))
        self.tabs.setCurrentWidget(self.problems_pane)
        self.statusBar().showMessage(result.error or "", 10000)

    def _report_notes(self, notes: list[str]) -> None:
        """A run that recorded nothing (or missed part of the program) says why, as the CLI
        does with its "loopscope: note:" lines."""
        self.problems.setPlainText("\n".join(notes))
        self.tabs.setCurrentWidget(self.problems_pane)
        self.statusBar().showMessage(notes[0], 15000)

    # -- files ----------------------------------------------------------------------------

    def ask_open_trace(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a trace", self.settings.last_directory,
                                              TRACE_FILTER)
        if path:
            self.load_trace(path)

    def open_trace(self, path: str) -> bool:
        """Loads a saved trace here and now; a bad file shows one clear error and leaves the
        window as it was. (What the user opens is loaded in the background: load_trace.)"""
        from loopscope.tracer.native import NativeFormatError, load_native

        if self.live.is_running:
            self.show_error("Cannot open a trace", "Stop the running program first.")
            return False
        try:
            trace = cut_held_time(load_native(path))
        except NativeFormatError as exc:
            self.show_error("Cannot open the trace", str(exc))
            return False
        self._show_opened(path, trace, None)
        return True

    # -- opening in the background (ui.trace_loading) ---------------------------------------

    def load_trace(self, path: str, loader: Loader | None = None) -> TraceLoading | None:
        """Opens a saved trace without freezing the window: read and folded on a worker
        thread while a progress bar in the status bar fills; shown when done. A later open
        replaces one still loading. None (and an error shown) while a program runs.
        `loader` reads the file (default: tracer.native.load_native)."""
        from loopscope.ui.trace_loading import TraceLoading, load_with_progress

        if self.live.is_running:
            self.show_error("Cannot open a trace", "Stop the running program first.")
            return None
        if self.loading is not None:
            self.loading.cancel()
        loading = self.loading = TraceLoading(path, loader or load_with_progress, parent=self)
        loading.progressed.connect(self._on_load_progress)
        loading.loaded.connect(lambda trace, folded: self._on_loaded(loading, trace, folded))
        loading.failed.connect(lambda error: self._on_load_failed(loading, error))
        self.load_progress.setValue(0)
        self.statusBar().addPermanentWidget(self.load_progress)
        self.load_progress.show()
        self.statusBar().showMessage(f"Opening {path}…")
        loading.start()
        return loading

    def _on_load_progress(self, fraction: float) -> None:
        self.load_progress.setValue(round(fraction * 1000))

    def _end_loading(self, loading: TraceLoading) -> bool:
        """Whether `loading` is the one on show (a newer open may have replaced it)."""
        if loading is not self.loading:
            return False
        self.loading = None
        self.statusBar().removeWidget(self.load_progress)  # hides it
        self.statusBar().clearMessage()
        return True

    def _on_loaded(self, loading: TraceLoading, trace: Trace, folded: SpanBuilder) -> None:
        if self._end_loading(loading) and not self.live.is_running:
            self._show_opened(loading.path, trace, folded)

    def _on_load_failed(self, loading: TraceLoading, error: str) -> None:
        if self._end_loading(loading):
            self.show_error("Cannot open the trace", error)

    def _show_opened(self, path: str, trace: Trace, folded: SpanBuilder | None) -> None:
        self.settings.last_directory = str(Path(path).resolve().parent)
        self._remember(path)
        # framed as the scenario's first view
        self._show_trace(trace, live=False, path=path, folded=folded)
        meta = trace.meta
        # The browser describes what is on show: this trace's scenario, or none.
        if not (meta.get("kind") == "scenario" and self.browser.select(str(meta.get("target")))):
            self.browser.clear_selection()
        self.source.show_file(_program_file(str(meta.get("kind", "")),
                                            str(meta.get("target", "")), ""))
        self.status = str(meta.get("status", "ok")) if meta.get("status") != "running" else "ok"
        self.details.show_summary(trace)
        self._update_actions()
        self._update_status()

    def ask_save_trace(self) -> None:
        if self.trace is None:
            return
        suggested = str(Path(self.settings.last_directory) / f"{self._base_name()}.loopscope")
        path, _ = QFileDialog.getSaveFileName(self, "Save the trace", suggested, TRACE_FILTER)
        if path:
            self.save_trace(path)

    def save_trace(self, path: str) -> bool:
        from loopscope.tracer.native import save_native

        if self.trace is None:
            return False
        try:
            save_native(self.trace, path)
        except OSError as exc:
            self.show_error("Cannot save the trace", f"cannot write {path}: {exc.strerror or exc}")
            return False
        self.trace_path = path
        self.settings.last_directory = str(Path(path).resolve().parent)
        self._remember(path)
        self.statusBar().showMessage(f"Saved {path}", 4000)
        self._update_title()
        return True

    def ask_export_image(self) -> None:
        if self.trace is None:
            return
        suggested = str(Path(self.settings.last_directory) / f"{self._base_name()}.png")
        path, chosen = QFileDialog.getSaveFileName(self, "Export the timeline", suggested,
                                                   ";;".join(IMAGE_FILTERS.values()))
        if not path:
            return
        if Path(path).suffix.lower() not in IMAGE_FILTERS:  # take the extension from the filter
            extension = next((e for e, f in IMAGE_FILTERS.items() if f == chosen), ".png")
            path += extension
        self.export_image(path)

    def export_image(self, path: str, size: tuple[int, int] = EXPORT_SIZE) -> bool:
        """Writes the timeline's visible range as .png, .svg or .pdf, as it looks on screen."""
        from loopscope.ui.image_export import render_image

        if self.trace is None:
            return False
        width, height = size
        start_ns, end_ns = self.timeline.view_range
        try:
            render_image(self.trace, path, width=width, height=height,
                         theme=self.settings.theme, start_ns=start_ns, end_ns=end_ns,
                         title=str(self.trace.meta.get("target") or APP_NAME),
                         all_lanes=not self.timeline.fold_library,
                         findings=list(self.diagnostics.flagged.values()))
        except (OSError, ValueError) as exc:
            self.show_error("Cannot export the image", str(exc))
            return False
        self.settings.last_directory = str(Path(path).resolve().parent)
        self.statusBar().showMessage(f"Exported {path}", 4000)
        return True

    def ask_export_json(self) -> None:
        if self.trace is None:
            return
        suggested = str(Path(self.settings.last_directory) / f"{self._base_name()}.json")
        path, _ = QFileDialog.getSaveFileName(self, "Export Perfetto JSON", suggested,
                                              "Chrome trace JSON (*.json)")
        if path:
            self.export_json(path)

    def export_json(self, path: str) -> bool:
        from loopscope.tracer.export_chrome import save_chrome_json

        if self.trace is None:
            return False
        try:
            save_chrome_json(self.trace, path)
        except OSError as exc:
            self.show_error("Cannot export JSON", f"cannot write {path}: {exc.strerror or exc}")
            return False
        self.statusBar().showMessage(f"Exported {path} (open it in ui.perfetto.dev)", 6000)
        return True

    def _remember(self, path: str) -> None:
        self.settings.add_recent_file(path)
        self._fill_recent_menu()

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_files()
        for path in recent:
            action = self.recent_menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(lambda checked=False, p=path: self._open_recent(p))
        if recent:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear Recent", self._clear_recent)
        else:
            self.recent_menu.addAction("No recent traces").setEnabled(False)

    def _open_recent(self, path: str) -> None:
        if not Path(path).exists():
            self.settings.remove_recent_file(path)
            self._fill_recent_menu()
            self.show_error("Cannot open the trace", f"{path} no longer exists")
            return
        self.load_trace(path)

    def _clear_recent(self) -> None:
        self.settings.clear_recent_files()
        self._fill_recent_menu()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if not paths:
            return
        event.acceptProposedAction()
        self.open_dropped(paths[0])

    def open_dropped(self, path: str) -> None:
        """A dropped trace opens; a dropped Python script runs."""
        from loopscope.tracer.native import is_trace_file

        if path.endswith(".py") and not is_trace_file(Path(path)):
            self.run_script(path)
        else:
            self.load_trace(path)

    # -- selection ------------------------------------------------------------------------

    def _on_scenario_selected(self, scenario: Scenario | None) -> None:
        if scenario is not None and not self.live.is_running and self.trace is None:
            self.source.show_file(_program_file("scenario", scenario.id, scenario.module))
        self._update_actions()

    def _on_span_selected(self, index: int) -> None:
        trace, spans = self.trace, self.timeline.spans
        if trace is None or not 0 <= index < len(spans):
            if trace is not None:
                self.details.show_summary(trace)
            return
        self.details.show_span(trace, spans, index)
        self.tabs.setCurrentWidget(self.details)
        source_index = spans.source[index]
        if source_index:
            filename, line, _ = trace.sources[source_index]
            self.source.show_location(filename, line)
        self.diagnostics.span_selected(index)  # a stalled span: its stack and blocking line

    def _on_lane_selected(self, lane: int) -> None:
        if self.trace is None:
            return
        self.details.show_lane(self.trace, self.timeline.spans, lane)
        self.tabs.setCurrentWidget(self.details)

    def _on_task_lane_activated(self, lane: int) -> None:
        """A row of the Tasks view: the timeline scrolls to the lane and the details pane
        shows it, behind the Tasks view, which stays in front."""
        if self.trace is not None:
            self.diagnostics.scroll_to_lane(lane)
            self.details.show_lane(self.trace, self.timeline.spans, lane)

    # -- view -----------------------------------------------------------------------------

    def _on_follow_toggled(self, checked: bool) -> None:
        self.timeline.set_follow_live(checked)

    def _sync_follow_action(self) -> None:
        # the timeline stops following when the user zooms or pans away; show that
        following = self.timeline.live and self.timeline.follow_live
        if self.follow_action.isChecked() != following:
            self.follow_action.setChecked(following)

    def apply_theme(self, name: str) -> None:
        """Themes the timeline and, so the window matches it, the whole app's palette."""
        self.settings.theme = name
        name = self.settings.theme
        self.theme_actions[name].setChecked(True)
        self.timeline.set_theme(name)
        self._paint_icons()
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.setPalette(_dark_palette(self.timeline.theme) if name == "dark"
                           else app.style().standardPalette())

    def _paint_icons(self) -> None:
        """Toolbar icons in the theme's text colour: readable on light and dark alike."""
        color = self.timeline.theme.text
        for action, name in ((self.run_action, "play"), (self.stop_action, "stop"),
                             (self.step_through_action, "step-through"),
                             (self.step_action, "step"), (self.step_back_action, "step-back"),
                             (self.continue_action, "play"), (self.pause_action, "pause"),
                             (self.zoom_fit_action, "fit"), (self.follow_action, "follow")):
            action.setIcon(toolbar_icon(name, color))

    def show_shortcuts(self) -> None:
        self._show_note("Keyboard shortcuts", SHORTCUTS_HELP)

    def show_about(self) -> None:
        self._show_note("About Loopscope", ABOUT_TEXT)

    def _show_note(self, title: str, html_text: str) -> None:
        # open(), not exec(): a nested event loop inside a slot would re-enter the asyncio loop
        box = QMessageBox(QMessageBox.Icon.NoIcon, title, html_text,
                          QMessageBox.StandardButton.Close, self)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.note_box = box

    def show_error(self, title: str, message: str) -> None:
        """One line on stderr and a dialog that does not block the loop (runs keep going)."""
        print(f"loopscope: error: {message}", file=sys.stderr, flush=True)
        if self.error_box is not None:
            self.error_box.close()
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok,
                          self)
        box.setTextFormat(Qt.TextFormat.PlainText)  # messages quote file names and traces
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()
        self.error_box = box

    # -- state ----------------------------------------------------------------------------

    def _show_trace(self, trace: Trace, *, live: bool, path: str | None,
                    folded: SpanBuilder | None = None) -> None:
        self.trace = trace
        self.source.follow_trace(trace.meta)
        self.trace_path = path
        # fits the run, and keeps fitting it live
        self.timeline.set_trace(trace, live=live, folded=folded)
        self.stepping.attach(trace, self.live.stepper if live else None)
        self.diagnostics.show_trace(trace, live=live)
        # The step keys (arrows, Home, End) act from the timeline: give it focus with the run.
        self.timeline.setFocus()
        if not live:
            self.details.show_summary(trace)
        self._update_title()

    def _base_name(self) -> str:
        if self.trace_path:
            return Path(self.trace_path).stem
        target = str(self.trace.meta.get("target", "trace")) if self.trace else "trace"
        return Path(target.split()[0]).stem or "trace"

    def _update_title(self) -> None:
        if self.trace is None:
            self.setWindowTitle(APP_NAME)
            return
        name = Path(self.trace_path).name if self.trace_path else self.trace.meta.get("target")
        self.setWindowTitle(f"{name} — {APP_NAME}" if name else APP_NAME)
        self.target_label.setText(str(self.trace.meta.get("target", "")))

    def _update_actions(self) -> None:
        running = self.live.is_running
        has_trace = self.trace is not None
        self.run_action.setEnabled(not running and (self.browser.current is not None
                                                    or self._last_script is not None))
        self.run_script_action.setEnabled(not running)
        self.stop_action.setEnabled(running)
        self.open_action.setEnabled(not running)
        for action in (self.save_action, self.export_image_action, self.export_json_action):
            action.setEnabled(has_trace and not running)
        self._update_step_actions()

    def _update_step_actions(self) -> None:
        stepping, running = self.stepping, self.live.is_running
        can_start = not running and (self.browser.current is not None
                                     or self._last_script is not None)
        scrub = stepping.can_scrub
        free_run = running and stepping.live and not stepping.held
        self.step_through_action.setEnabled(can_start)
        self.step_action.setEnabled(scrub or running or (can_start and self.trace is None))
        for action in (self.next_switch_action, self.next_io_action):
            action.setEnabled(scrub or running)
        # Arrows, Home and End keep their timeline meaning (scroll, follow live) unless there
        # is a cursor to move: a recording, or a held run.
        for action in (self.step_back_action, self.cursor_next_action,
                       self.cursor_previous_action, self.previous_switch_action,
                       self.previous_io_action, self.first_step_action, self.last_step_action):
            action.setEnabled(scrub)
        self.continue_action.setEnabled((running and stepping.held)
                                        or (scrub and not running and not stepping.playing))
        self.pause_action.setEnabled(free_run or stepping.playing)

    def _show_step(self) -> None:
        """The cursor moved: the timeline's cursor, the narration and the source follow it."""
        stepping, trace = self.stepping, self.trace
        if stepping.live:
            self.timeline.refresh()
        self.timeline.set_cursor(stepping.cursor_ns())
        position = ""
        if trace is not None and stepping.cursor >= 0:
            position = f"event {stepping.cursor + 1:,} of {len(trace):,}"
        self.narration.show_step(stepping.narration(), position)
        self._show_held_view()
        where = stepping.source_at_cursor()
        if where is not None and trace is not None:
            self.source.show_step(where.filename, where.line, where.faint,
                                  f"{trace.lane_name(where.lane)} ran here last")
        elif stepping.cursor >= 0:
            self.source.clear_marks()  # no line has run yet at this step

    def _show_held_view(self) -> None:
        """While the program is held at the cursor's step, Details shows its paused frame's
        local variables (as the child read them when it was held there)."""
        view = self.stepping.held_view()
        if view is not None and self.trace is not None:
            self.details.show_held(self.trace, view)

    def _update_status(self) -> None:
        trace = self.trace
        self._sync_held()
        held = self.live.is_running and self.stepping.live and self.stepping.held
        self.state_label.setText("held" if held else _STATE_LABELS.get(self.status, self.status))
        # The program's clock, as the time axis counts it: from its first event.
        elapsed_ns = self.timeline.live_edge_ns() - trace.first_event_ns if trace else 0.0
        self.elapsed_label.setText(format_duration(elapsed_ns) if trace is not None else "")
        self.events_label.setText(f"{len(trace):,} events" if trace is not None else "")
        self.lanes_label.setText(f"{len(trace.lanes)} lanes" if trace is not None else "")
        dropped = int(trace.meta.get("dropped") or 0) if trace is not None else 0
        self.dropped_label.setText(f"{dropped:,} dropped" if dropped else "")
        self.dropped_label.setVisible(bool(dropped))

    # -- layout persistence and closing ---------------------------------------------------

    def _restore_layout(self) -> None:
        geometry = self.settings.window_state("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        for name in _SPLITTERS:
            state = self.settings.window_state(name)
            if state is not None:
                getattr(self, name).restoreState(state)
        state = self.settings.window_state("scenario_splitter")
        if state is not None:
            self.browser.splitter.restoreState(state)

    def save_layout(self) -> None:
        self.settings.set_window_state("geometry", self.saveGeometry())
        for name in _SPLITTERS:
            self.settings.set_window_state(name, getattr(self, name).saveState())
        self.settings.set_window_state("scenario_splitter", self.browser.splitter.saveState())
        self.settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.live.is_running and not self._closing:
            # Stop the child properly first (it gets the runner's grace period), then close.
            self._closing = True
            event.ignore()
            self._close_task = asyncio.ensure_future(self._stop_then_close())
            return
        self.live.kill_now()
        self.save_layout()
        super().closeEvent(event)
        self.closed.emit()

    async def _stop_then_close(self) -> None:
        try:
            await self.live.stop()
        finally:
            self.close()


def _dark_palette(theme: Theme) -> QPalette:
    palette = QPalette()
    role, group = QPalette.ColorRole, QPalette.ColorGroup
    colours = {
        role.Window: theme.label_background,
        role.WindowText: theme.text,
        role.Base: theme.background,
        role.AlternateBase: theme.row_stripe,
        role.Text: theme.text,
        role.Button: theme.label_background,
        role.ButtonText: theme.text,
        role.BrightText: "#ffffff",
        role.ToolTipBase: theme.label_background,
        role.ToolTipText: theme.text,
        role.PlaceholderText: theme.text_dim,
        role.Highlight: theme.states.get(Code.IO_WAIT, "#3d8fd6"),
        role.HighlightedText: "#ffffff",
        role.Link: theme.states.get(Code.SLEEPING, "#7cc6ef"),
        role.Light: theme.separator,
        role.Midlight: theme.grid,
        role.Mid: theme.text_dim,
        role.Dark: theme.background,
        role.Shadow: "#000000",
    }
    for colour_role, colour in colours.items():
        palette.setColor(colour_role, QColor(colour))
    for colour_role in (role.WindowText, role.Text, role.ButtonText):
        palette.setColor(group.Disabled, colour_role, QColor(theme.text_dim).darker(130))
    return palette


def _program_file(kind: str, value: str, module: str) -> str | None:
    """The file whose code a run executes: the scenario's module or the script."""
    if kind == "script":
        # a script's label is its path followed by its arguments
        candidates = (value, value.split(" ", 1)[0])
        return next((c for c in candidates if Path(c).is_file()), None)
    if kind == "scenario":
        if not module:
            try:
                module = catalog.get(value).module
            except catalog.UnknownScenarioError:
                return None
        path = Path(catalog.__file__).resolve().parent / f"{module.rsplit('.', 1)[-1]}.py"
        return str(path) if path.is_file() else None
    return None

