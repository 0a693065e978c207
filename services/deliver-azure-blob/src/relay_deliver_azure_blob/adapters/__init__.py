"""The I/O of deliver-azure-blob: the azure-storage-blob (aio) uploader."""
