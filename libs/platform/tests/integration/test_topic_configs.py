"""Topics are created with their settings: the control topic compacted, so a pause is never deleted by age."""

from __future__ import annotations

import uuid
from unittest import mock

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from relay_contracts import topics
from relay_platform.broker import ensure_topics

pytestmark = pytest.mark.integration


def test_the_control_topic_is_compacted_and_no_other_topic_is_changed() -> None:
    assert topics.TOPIC_CONFIGS == {topics.INTEGRATIONS_CONTROL: {"cleanup.policy": "compact"}}
    assert topics.INTEGRATIONS_CONTROL in topics.ALL_TOPICS


async def test_a_missing_topic_is_created_with_its_settings(kafka_bootstrap: str) -> None:
    # A topic of the test's own: on the session's shared broker the real control topic may exist already.
    compacted, plain = f"test.compacted.{uuid.uuid4().hex}", f"test.plain.{uuid.uuid4().hex}"
    with mock.patch.dict(topics.TOPIC_CONFIGS, {compacted: {"cleanup.policy": "compact"}}):
        await ensure_topics(kafka_bootstrap, (compacted, plain), partitions=1)

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in (compacted, plain)]
        )
    finally:
        await admin.close()
    settings = {resource[3]: {entry[0]: entry[1] for entry in resource[4]} for resource in response.resources}
    assert settings[compacted].get("cleanup.policy") == "compact"
    assert settings[plain].get("cleanup.policy") != "compact"
