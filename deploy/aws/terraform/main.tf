# IAM role that the Prowler S3 exporter assumes (with an external ID) to write
# scan outputs to an S3 bucket, and the S3 integration policy: exactly
# s3:PutObject on the bucket's objects, s3:DeleteObject on the connection-test
# beacon and s3:GetBucketLocation on the bucket, only in the bucket's account;
# with s3_integration_kms_key_arn, also the use of that KMS key through S3.
#
# Set existing_role_name to attach the policy to a role you already have
# instead of creating one (as Prowler's own Terraform for the S3 integration
# allows).
#
# For a bucket in another account, list the writing accounts in
# bucket_policy_source_account_ids and apply the bucket_policy_json output
# to the bucket (in its own account). See docs/operations.md.
#
# Optionally (contract v1.2), set prowler_app_output_bucket_name and
# exporter_role_name to let the exporter's own role read Prowler App's output
# bucket: s3:GetObject on its objects and s3:GetBucketLocation, nothing else
# (docs/prowler-app.md).

terraform {
  required_version = ">= 1.3"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

data "aws_partition" "current" {}

locals {
  create_role = var.existing_role_name == ""

  bucket_arn = "arn:${data.aws_partition.current.partition}:s3:::${var.s3_integration_bucket_name}"

  read_outputs       = var.prowler_app_output_bucket_name != ""
  outputs_bucket_arn = "arn:${data.aws_partition.current.partition}:s3:::${var.prowler_app_output_bucket_name}"

  source_role_arns = [
    for id in var.bucket_policy_source_account_ids :
    "arn:${data.aws_partition.current.partition}:iam::${id}:role/${var.bucket_policy_source_role_name}"
  ]
}

data "aws_iam_policy_document" "trust" {
  count = local.create_role ? 1 : 0

  statement {
    sid     = "AssumeWithExternalId"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = [var.trusted_principal_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [var.external_id]
    }
  }
}

resource "aws_iam_role" "exporter" {
  count = local.create_role ? 1 : 0

  name                 = var.role_name
  description          = "Assumed by the Prowler S3 exporter to write scan outputs to S3."
  assume_role_policy   = data.aws_iam_policy_document.trust[0].json
  max_session_duration = var.max_session_duration
  tags                 = merge({ Service = "prowler-s3-exporter" }, var.tags)

  lifecycle {
    precondition {
      condition     = var.trusted_principal_arn != null && var.external_id != null
      error_message = "trusted_principal_arn and external_id are required unless existing_role_name is set."
    }
  }
}

# The role named by existing_role_name, for its ARN.
data "aws_iam_role" "existing" {
  count = local.create_role ? 0 : 1

  name = var.existing_role_name
}

data "aws_iam_policy_document" "s3_integration" {
  count = var.enable_s3_integration ? 1 : 0

  statement {
    sid       = "PutScanOutputs"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = ["${local.bucket_arn}/*"]

    condition {
      test     = "StringEquals"
      variable = "s3:ResourceAccount"
      values   = [var.s3_integration_bucket_account]
    }
  }

  statement {
    sid       = "DeleteConnectionTestBeacon"
    effect    = "Allow"
    actions   = ["s3:DeleteObject"]
    resources = ["${local.bucket_arn}/*test-prowler-connection.txt"]

    condition {
      test     = "StringEquals"
      variable = "s3:ResourceAccount"
      values   = [var.s3_integration_bucket_account]
    }
  }

  statement {
    sid       = "GetBucketLocation"
    effect    = "Allow"
    actions   = ["s3:GetBucketLocation"]
    resources = [local.bucket_arn]

    condition {
      test     = "StringEquals"
      variable = "s3:ResourceAccount"
      values   = [var.s3_integration_bucket_account]
    }
  }
}

resource "aws_iam_role_policy" "s3_integration" {
  count = var.enable_s3_integration ? 1 : 0

  name   = "S3Integration"
  role   = local.create_role ? one(aws_iam_role.exporter[*].id) : var.existing_role_name
  policy = data.aws_iam_policy_document.s3_integration[0].json

  lifecycle {
    precondition {
      condition     = var.s3_integration_bucket_name != "" && var.s3_integration_bucket_account != ""
      error_message = "s3_integration_bucket_name and s3_integration_bucket_account are required when enable_s3_integration is true."
    }
  }
}

# Writing an SSE-KMS object takes a data key (kms:GenerateDataKey); a
# multipart upload also decrypts it for each part (kms:Decrypt). Only through
# S3 (kms:ViaService), on the one key given.
data "aws_iam_policy_document" "kms_key" {
  count = var.enable_s3_integration && var.s3_integration_kms_key_arn != "" ? 1 : 0

  statement {
    sid       = "UseBucketKmsKeyThroughS3"
    effect    = "Allow"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.s3_integration_kms_key_arn]

    condition {
      test     = "StringLike"
      variable = "kms:ViaService"
      values   = ["s3.*.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "kms_key" {
  count = var.enable_s3_integration && var.s3_integration_kms_key_arn != "" ? 1 : 0

  name   = "S3IntegrationKmsKey"
  role   = local.create_role ? one(aws_iam_role.exporter[*].id) : var.existing_role_name
  policy = data.aws_iam_policy_document.kms_key[0].json
}

# The cross-account bucket policy, for the bucket's owner to apply. It grants
# the same three actions to the exporter role of every source account.
data "aws_iam_policy_document" "bucket_policy" {
  count = length(local.source_role_arns) > 0 ? 1 : 0

  statement {
    sid       = "ProwlerPutScanOutputs"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = ["${local.bucket_arn}/*"]

    principals {
      type        = "AWS"
      identifiers = local.source_role_arns
    }
  }

  statement {
    sid       = "ProwlerDeleteConnectionTestBeacon"
    effect    = "Allow"
    actions   = ["s3:DeleteObject"]
    resources = ["${local.bucket_arn}/*test-prowler-connection.txt"]

    principals {
      type        = "AWS"
      identifiers = local.source_role_arns
    }
  }

  statement {
    sid       = "ProwlerGetBucketLocation"
    effect    = "Allow"
    actions   = ["s3:GetBucketLocation"]
    resources = [local.bucket_arn]

    principals {
      type        = "AWS"
      identifiers = local.source_role_arns
    }
  }
}

# The exporter's own role reads Prowler App's output bucket (s3:// sources and
# archives, contract v1.2), and nothing else there.
data "aws_iam_policy_document" "prowler_app_outputs" {
  count = local.read_outputs ? 1 : 0

  statement {
    sid       = "ReadProwlerAppOutputs"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${local.outputs_bucket_arn}/*"]
  }

  statement {
    sid       = "FindTheOutputBucket"
    effect    = "Allow"
    actions   = ["s3:GetBucketLocation"]
    resources = [local.outputs_bucket_arn]
  }
}

resource "aws_iam_role_policy" "prowler_app_outputs" {
  count = local.read_outputs ? 1 : 0

  name   = "ProwlerAppOutputsRead"
  role   = var.exporter_role_name
  policy = data.aws_iam_policy_document.prowler_app_outputs[0].json

  lifecycle {
    precondition {
      condition     = var.exporter_role_name != ""
      error_message = "exporter_role_name is required when prowler_app_output_bucket_name is set."
    }
  }
}
