"""The worker protocol: wire messages, the handshake state machine and the JSON codec."""

from .codec import converter, dumps, from_json, loads, structure, to_json, unstructure
from .handshake import HandshakeState, StageHandshake
from .messages import (
    AcknowledgeReply,
    AcknowledgeRequest,
    Binding,
    HandshakeReply,
    HandshakeRequest,
    ProcessReply,
    ProcessRequest,
    ResourceEstimate,
    StageInput,
    StageSummary,
    WorkerHealth,
)

__all__ = [
    "AcknowledgeReply",
    "AcknowledgeRequest",
    "Binding",
    "HandshakeReply",
    "HandshakeRequest",
    "HandshakeState",
    "ProcessReply",
    "ProcessRequest",
    "ResourceEstimate",
    "StageHandshake",
    "StageInput",
    "StageSummary",
    "WorkerHealth",
    "converter",
    "dumps",
    "from_json",
    "loads",
    "structure",
    "to_json",
    "unstructure",
]
