"""The scenario browser: every built-in scenario grouped by model, and what it teaches."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtWidgets import (
    QSplitter,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from loopscope.scenarios import Scenario
from loopscope.tracer.models import model_spec


def model_title(model: str) -> str:
    """The heading a model's scenarios are grouped under (its name, for a model we do not know)."""
    spec = model_spec(model)
    return spec.title if spec is not None else model

_SCENARIO_ROLE = Qt.ItemDataRole.UserRole


class _WrappingDelegate(QStyledItemDelegate):
    """Rows as tall as their wrapped title: the tree's own row heights assume one line."""

    def __init__(self, tree: QTreeWidget) -> None:
        super().__init__(tree)
        self.tree = tree

    def sizeHint(self, option: QStyleOptionViewItem,
                 index: QModelIndex | QPersistentModelIndex) -> QSize:
        hint = super().sizeHint(option, index)
        depth = 1 if index.parent().isValid() else 0
        width = max(self.tree.viewport().width() - self.tree.indentation() * depth - 12, 40)
        text = str(index.data() or "")
        wrapped = option.fontMetrics.boundingRect(
            QRect(0, 0, width, 10_000), Qt.TextFlag.TextWordWrap, text
        )
        return QSize(min(hint.width(), width), max(hint.height(), wrapped.height() + 6))


class ScenarioBrowser(QWidget):
    scenario_selected = Signal(object)  # the Scenario, or None
    scenario_activated = Signal(object)  # double-click or Enter: run it

    def __init__(self, scenarios: tuple[Scenario, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget()
        self.tree.setHeaderHidden(True)
        self.tree.setRootIsDecorated(False)
        self.tree.setIndentation(10)
        self.tree.setWordWrap(True)  # titles are sentences; wrap them rather than cut them
        self.tree.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.tree.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.tree.setItemDelegate(_WrappingDelegate(self.tree))
        self.tree.viewport().installEventFilter(self)
        self.description = QTextBrowser()
        self.description.setOpenLinks(False)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("scenario_splitter")
        self.splitter.addWidget(self.tree)
        self.splitter.addWidget(self.description)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)
        self.scenarios = scenarios
        self._fill(scenarios)
        self.tree.currentItemChanged.connect(self._on_current)
        self.tree.itemActivated.connect(self._on_activated)
        self._describe(None)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize and watched is self.tree.viewport():
            self.tree.doItemsLayout()  # a new width wraps the titles differently
        return super().eventFilter(watched, event)

    def _fill(self, scenarios: tuple[Scenario, ...]) -> None:
        groups: dict[str, QTreeWidgetItem] = {}
        for scenario in scenarios:
            group = groups.get(scenario.model)
            if group is None:
                group = QTreeWidgetItem([model_title(scenario.model)])
                group.setFlags(Qt.ItemFlag.ItemIsEnabled)
                font = group.font(0)
                font.setBold(True)
                group.setFont(0, font)
                groups[scenario.model] = group
                self.tree.addTopLevelItem(group)
            item = QTreeWidgetItem([scenario.title])
            item.setData(0, _SCENARIO_ROLE, scenario.id)
            item.setToolTip(0, f"{scenario.title}\n{scenario.id} · {scenario.model}")
            group.addChild(item)
        self.tree.expandAll()
        if not scenarios:
            empty = QTreeWidgetItem(["No scenarios found"])
            empty.setFlags(Qt.ItemFlag.NoItemFlags)
            self.tree.addTopLevelItem(empty)

    def _scenario_of(self, item: QTreeWidgetItem | None) -> Scenario | None:
        if item is None:
            return None
        scenario_id = item.data(0, _SCENARIO_ROLE)
        return next((s for s in self.scenarios if s.id == scenario_id), None)

    @property
    def current(self) -> Scenario | None:
        return self._scenario_of(self.tree.currentItem())

    def select(self, scenario_id: str) -> bool:
        """Selects a scenario by id; False when there is no such scenario."""
        for index in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(index)
            for child in range(group.childCount() if group is not None else 0):
                item = group.child(child) if group is not None else None
                if item is not None and item.data(0, _SCENARIO_ROLE) == scenario_id:
                    self.tree.setCurrentItem(item)
                    return True
        return False

    def clear_selection(self) -> None:
        """No scenario selected (what is on show is not one): the description says so."""
        self.tree.setCurrentIndex(QModelIndex())

    def _on_current(self, item: QTreeWidgetItem | None, previous: QTreeWidgetItem | None) -> None:
        scenario = self._scenario_of(item)
        self._describe(scenario)
        self.scenario_selected.emit(scenario)

    def _on_activated(self, item: QTreeWidgetItem, column: int) -> None:
        scenario = self._scenario_of(item)
        if scenario is not None:
            self.scenario_activated.emit(scenario)

    def _describe(self, scenario: Scenario | None) -> None:
        if scenario is None:
            self.description.setHtml(
                "<p>Pick a scenario to read what it teaches, then press <b>Run</b> (F5).</p>"
            )
            return
        self.description.setHtml(
            f"<h3 style='margin-bottom:2px'>{escape(scenario.title)}</h3>"
            f"<p style='margin-top:0'><code>{escape(scenario.id)}</code> · "
            f"{escape(model_title(scenario.model))}</p>"
            f"<p>{escape(scenario.concept)}</p>"
            f"<p><b>What to look for:</b> {escape(scenario.observe)}</p>"
        )
