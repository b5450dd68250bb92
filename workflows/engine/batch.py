"""In-memory state of one locked batch of enrollments, written back with grouped updates."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import F

from campaigns.metrics import MetricBatch
from mktauto.bulk_insert import insert_rows
from workflows.models import Enrollment, Step, StepLog, Workflow

CHUNK = 5000

# One step log as (enrollment id, step id, visit, outcome, reason). Batch.write adds the batch's time.
LogRow = tuple[int, int | None, int, str, str]


@dataclass(slots=True)
class Run:
    """One enrollment as the tick sees it while it moves through steps."""

    id: int
    workflow_id: int
    contact_id: int
    key: str
    enrolled_at: datetime
    step_id: int | None
    visit: int
    next_run_at: datetime | None = None
    start_step_id: int | None = None
    start_visit: int = 0
    state: str = Enrollment.State.ACTIVE
    exit_reason: str = ""
    changed: bool = False
    waiting_since: datetime | None = None


@dataclass
class Plan:
    """A workflow's steps in order, with lookups by id and key."""

    workflow: Workflow
    steps: list[Step]
    by_id: dict[int, Step] = field(default_factory=dict)
    by_key: dict[str, Step] = field(default_factory=dict)
    next_of: dict[int, Step | None] = field(default_factory=dict)

    @classmethod
    def load(cls, workflow: Workflow, steps: list[Step]) -> "Plan":
        plan = cls(workflow=workflow, steps=steps)
        for index, step in enumerate(steps):
            plan.by_id[step.pk] = step
            plan.by_key[step.key] = step
            plan.next_of[step.pk] = steps[index + 1] if index + 1 < len(steps) else None
        return plan


def load_plans(workflow_ids: set[int]) -> dict[int, Plan]:
    workflows = Workflow.objects.in_bulk(workflow_ids)
    steps: dict[int, list[Step]] = defaultdict(list)
    for step in Step.objects.filter(workflow_id__in=workflow_ids).select_related("template").order_by("position", "id"):
        steps[step.workflow_id].append(step)
    return {workflow_id: Plan.load(workflow, steps[workflow_id]) for workflow_id, workflow in workflows.items()}


class Batch:
    def __init__(self, runs: list[Run], now: datetime, plans: dict[int, Plan]) -> None:
        self.runs = runs
        self.now = now
        self.plans = plans
        self.logs: list[LogRow] = []
        self.metrics = MetricBatch()

    def due(self) -> list[Run]:
        return [run for run in self.runs if run.state == Enrollment.State.ACTIVE and run.next_run_at <= self.now]

    def log(self, run: Run, step: Step | None, outcome: str, reason: str = "") -> None:
        self.logs.append((run.id, step.pk if step else None, run.visit, outcome, reason[:300]))

    def advance(self, run: Run, step: Step, next_run_at: datetime) -> None:
        """Move past ``step`` to the following one, or complete the enrollment after the last step."""
        following = self.plans[run.workflow_id].next_of.get(step.pk)
        if following is None and next_run_at > self.now:
            # A wait as the last step still waits; the enrollment completes when it is due again.
            run.step_id = None
            run.visit += 1
            run.next_run_at = next_run_at
            run.waiting_since = None
            run.changed = True
            return
        if following is None:
            self.finish(run, Enrollment.State.COMPLETED, "", step)
            return
        # A wait enters the following step at once, due when the wait ends; an exit meanwhile is
        # logged at the wait (exits.current_steps).
        self.enter(run, following, next_run_at)

    def go_to(self, run: Run, step: Step, target: str) -> None:
        """Follow a branch target: next, exit, or another step's key."""
        if target == "next":
            self.advance(run, step, self.now)
            return
        if target == "exit":
            self.finish(run, Enrollment.State.EXITED, "condition", step)
            return
        destination = self.plans[run.workflow_id].by_key.get(target)
        if destination is None:
            self.finish(run, Enrollment.State.FAILED, f"branch target {target!r} does not exist", step)
            return
        self.enter(run, destination, self.now)

    def enter(self, run: Run, step: Step, next_run_at: datetime) -> None:
        run.step_id = step.pk
        run.visit += 1
        run.next_run_at = next_run_at
        run.waiting_since = None
        run.changed = True

    def hold(self, run: Run, next_run_at: datetime, waiting_since: datetime | None) -> None:
        """Keep the run on its step until ``next_run_at``, e.g. a wait for an event until its timeout."""
        run.next_run_at = next_run_at
        run.waiting_since = waiting_since
        run.changed = True

    def finish(self, run: Run, state: str, reason: str, step: Step | None) -> None:
        run.state = state
        run.exit_reason = reason
        run.changed = True
        if state == Enrollment.State.COMPLETED:
            self.log(run, step, StepLog.Outcome.COMPLETED)
        else:
            self.log(run, step, StepLog.Outcome.EXITED, reason)
            if step is not None:
                self.metrics.add(step.pk, self.now, "exited")

    def write(self) -> None:
        """Write every changed enrollment with one update per group of equal new values."""
        groups: dict[tuple, list[int]] = defaultdict(list)
        for run in self.runs:
            if not run.changed:
                continue
            if run.state == Enrollment.State.ACTIVE:
                group = (run.state, run.step_id, run.next_run_at, run.visit - run.start_visit, "", run.waiting_since)
            else:
                group = (run.state, run.step_id, None, run.visit - run.start_visit, run.exit_reason, None)
            groups[group].append(run.id)

        for (state, step_id, next_run_at, visit_delta, reason, waiting_since), ids in groups.items():
            values = {
                "state": state,
                "step_id": step_id,
                "next_run_at": next_run_at,
                "visit": F("visit") + visit_delta,
                "waiting_since": waiting_since,
            }
            if state != Enrollment.State.ACTIVE:
                values.update(finished_at=self.now, exit_reason=reason)
            for start in range(0, len(ids), CHUNK):
                Enrollment.objects.filter(pk__in=ids[start : start + CHUNK]).update(**values)

        insert_rows(StepLog, ("enrollment_id", "step_id", "visit", "outcome", "reason"), self.logs, {"at": self.now})
        self.metrics.write()
