variable "role_name" {
  # Not ProwlerScan: that is Prowler's own scan role, which this module must
  # never collide with in an account that has both.
  description = "Name of the role the Prowler S3 exporter assumes (created unless existing_role_name is set)."
  type        = string
  default     = "ProwlerS3Exporter"
}

variable "existing_role_name" {
  description = "Name (not ARN) of an existing role to attach the S3 integration policy to, instead of creating role_name (trusted_principal_arn and external_id are then unused)."
  type        = string
  default     = ""

  validation {
    condition     = var.existing_role_name == "" || can(regex("^[[:alnum:]_+=,.@-]{1,64}$", var.existing_role_name))
    error_message = "existing_role_name must be a role name (1 to 64 characters of letters, digits and _+=,.@-), not an ARN."
  }
}

variable "trusted_principal_arn" {
  description = "ARN of the identity the exporter runs as (its IAM role, IRSA role or user), or arn:aws:iam::<account>:root to trust a whole account. Required unless existing_role_name is set."
  type        = string
  default     = null

  validation {
    condition     = var.trusted_principal_arn == null || can(regex("^arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:.+$", var.trusted_principal_arn))
    error_message = "trusted_principal_arn must be an IAM or STS ARN."
  }
}

variable "external_id" {
  description = "External ID the exporter sends when assuming the role: the integration's tenant_id (a role assumed with the exporter's own identity always carries the tenant ID, contract v1.1). Required unless existing_role_name is set."
  type        = string
  default     = null

  validation {
    condition     = var.external_id == null || try(can(regex("^[[:alnum:]_+=,.@:/-]+$", var.external_id)) && length(var.external_id) >= 2 && length(var.external_id) <= 1224, false)
    error_message = "external_id must be 2 to 1224 characters of letters, digits and _+=,.@:/-."
  }
}

variable "max_session_duration" {
  description = "Longest session the role allows, in seconds (covers the integration's session_duration)."
  type        = number
  default     = 3600

  validation {
    condition     = var.max_session_duration >= 3600 && var.max_session_duration <= 43200
    error_message = "max_session_duration must be between 3600 and 43200."
  }
}

variable "enable_s3_integration" {
  description = "Attach the S3 integration policy to the role."
  type        = bool
  default     = true
}

variable "s3_integration_bucket_name" {
  description = "Destination bucket name (no s3:// prefix, no folder, no trailing slash)."
  type        = string
  default     = ""

  validation {
    condition     = var.s3_integration_bucket_name == "" || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.s3_integration_bucket_name))
    error_message = "s3_integration_bucket_name must be a valid S3 bucket name."
  }
}

variable "s3_integration_bucket_account" {
  description = "AWS account ID that owns the destination bucket."
  type        = string
  default     = ""

  validation {
    condition     = var.s3_integration_bucket_account == "" || can(regex("^[0-9]{12}$", var.s3_integration_bucket_account))
    error_message = "s3_integration_bucket_account must be a 12-digit AWS account ID."
  }
}

variable "s3_integration_kms_key_arn" {
  description = "ARN of the customer managed KMS key that encrypts the bucket's objects (its default encryption, or the integration's kms_key_id). Empty: no KMS permission (SSE-S3, or the AWS managed key aws/s3). When the key is in another account, its key policy must allow the role too."
  type        = string
  default     = ""

  validation {
    condition     = var.s3_integration_kms_key_arn == "" || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.s3_integration_kms_key_arn))
    error_message = "s3_integration_kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)."
  }
}

variable "bucket_policy_source_account_ids" {
  description = "For a bucket in another account: the accounts whose exporter role writes to it. The bucket_policy_json output then holds the bucket policy to apply in the bucket's account."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.bucket_policy_source_account_ids : can(regex("^[0-9]{12}$", id))])
    error_message = "bucket_policy_source_account_ids must be 12-digit AWS account IDs."
  }
}

variable "bucket_policy_source_role_name" {
  description = "Name of the exporter role in each account of bucket_policy_source_account_ids."
  type        = string
  default     = "ProwlerS3Exporter"
}

variable "tags" {
  description = "Tags for the role."
  type        = map(string)
  default     = {}
}

variable "prowler_app_output_bucket_name" {
  description = "Prowler App's output bucket (DJANGO_OUTPUT_S3_AWS_OUTPUT_BUCKET), which the exporter reads s3:// sources and archives from with its own identity (S3EXPORTER_S3_SOURCE_BUCKETS). Empty: no read policy."
  type        = string
  default     = ""

  validation {
    condition     = var.prowler_app_output_bucket_name == "" || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.prowler_app_output_bucket_name))
    error_message = "prowler_app_output_bucket_name must be a valid S3 bucket name."
  }
}

variable "exporter_role_name" {
  description = "Name (not ARN) of the exporter's own role (the one it runs as), which gets the read policy on prowler_app_output_bucket_name. Required with it."
  type        = string
  default     = ""

  validation {
    condition     = var.exporter_role_name == "" || can(regex("^[\\w+=,.@-]{1,64}$", var.exporter_role_name))
    error_message = "exporter_role_name must be an IAM role name (not an ARN)."
  }
}
