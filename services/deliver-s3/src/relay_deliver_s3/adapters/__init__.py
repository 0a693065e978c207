"""The I/O of deliver-s3: the aiobotocore uploader."""
