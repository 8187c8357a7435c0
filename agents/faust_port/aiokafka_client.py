"""aiokafka's clients beyond their public API, for vipstream's own Kafka clients
(agents/kafka/). No Faust import: the command-line tools use these without loading it.

- `AIOKafkaConsumer._client.force_metadata_update()`: a metadata refresh for a topic
  created a moment ago, which `partitions_for_topic` does not trigger (aiokafka has no
  public call that refreshes a consumer's metadata now).
- `AIOKafkaAdminClient._send_request(CreateAclsRequest)`: aiokafka has the request but
  no admin call for ACLs (the ACL tests grant with it).
- `AIOKafkaAdminClient._send_request_to_node(HeartbeatRequest)`: whether the principal
  may read the consumer group, asked without joining it (the start-up access check).

tests/agents/test_faust_port.py fails when aiokafka moves it.
"""

from __future__ import annotations

from typing import Any

from aiokafka.protocol.admin import CreateAclsRequest
from aiokafka.protocol.group import HeartbeatRequest


async def force_metadata_update(consumer: Any) -> None:
    """Refresh an aiokafka consumer's metadata now (a topic created a moment ago)."""
    await consumer._client.force_metadata_update()


def transactions_failed_by(producer: Any) -> BaseException | None:
    """The error that made an aiokafka transactional producer's transactions fail for
    good, None while they have not. When its sender task fails (a newer owner of the
    transactional id fenced it: ProducerFenced, seen on a produce or an
    AddPartitionsToTxn answer), aiokafka moves the transaction manager to FATAL_ERROR
    and the caller only gets IllegalOperation("Can't send messages while not in
    transaction") from the next send: the cause is kept on the sender task alone
    (`AIOKafkaProducer._txn_manager`, `._sender.sender_task`; no public API)."""
    manager = getattr(producer, "_txn_manager", None)
    if manager is None or not manager.is_fatal_error():
        return None
    task = producer._sender.sender_task
    if task is None or not task.done() or task.cancelled():
        return None
    failure: BaseException | None = task.exception()
    return failure


async def create_acl(
    admin: Any,
    *,
    resource_type: int,
    resource_name: str,
    pattern_type: int,
    principal: str,
    operation: int,
    allow: bool = True,
) -> None:
    """One ACL binding, with CreateAcls (aiokafka's admin client has the request but no
    public call for it: `AIOKafkaAdminClient._send_request`). RuntimeError if refused."""
    request = CreateAclsRequest(
        resource_type, resource_name, pattern_type, principal, "*", operation, 3 if allow else 2
    )
    response = await admin._send_request(request)
    for code, message in response.creation_responses:
        if code:
            raise RuntimeError(f"CreateAcls refused ({code}): {message}")


async def group_read_error(admin: Any, group_id: str) -> int:
    """The error code of a Heartbeat to the group as a member that does not exist: 30
    (GROUP_AUTHORIZATION_FAILED) without Read on the group, else 25 (UNKNOWN_MEMBER_ID)
    or similar; no side effect on the group. `AIOKafkaAdminClient._send_request_to_node`:
    aiokafka has the request but no call that sends it outside a consumer."""
    coordinator = await admin.find_coordinator(group_id)
    request = HeartbeatRequest(group_id, -1, "vipstream-access-check")
    response = await admin._send_request_to_node(coordinator, request)
    code: int = response.error_code
    return code
