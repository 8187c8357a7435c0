"""The contracts of vipstream: pydantic v2 models of every input, output and state value.

No Faust, no I/O. Other packages import from here, never the other way round.
"""

from schemas.inputs import (
    INPUT_MODELS,
    CallEvent,
    ContactPreferenceEvent,
    InputEvent,
    OrderEvent,
    OrderItem,
    TicketEvent,
)
from schemas.outputs import (
    OUTPUT_MODELS,
    SCHEMA_VERSION,
    BasicQuestionSpike,
    CareTask,
    DeadLetter,
    OutputEvent,
    TicketPriority,
    TierChange,
)

__all__ = [
    "INPUT_MODELS",
    "OUTPUT_MODELS",
    "SCHEMA_VERSION",
    "BasicQuestionSpike",
    "CallEvent",
    "CareTask",
    "ContactPreferenceEvent",
    "DeadLetter",
    "InputEvent",
    "OrderEvent",
    "OrderItem",
    "OutputEvent",
    "TicketEvent",
    "TicketPriority",
    "TierChange",
]
