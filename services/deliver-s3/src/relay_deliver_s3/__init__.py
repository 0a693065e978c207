"""deliver-s3: uploads recipe bundles to an integration's S3 bucket."""
