output "role_arn" {
  description = "The integration's credentials.role_arn."
  value       = local.create_role ? one(aws_iam_role.exporter[*].arn) : one(data.aws_iam_role.existing[*].arn)
}

output "role_name" {
  description = "Name of the role the S3 integration policy is attached to."
  value       = local.create_role ? one(aws_iam_role.exporter[*].name) : var.existing_role_name
}

output "external_id" {
  description = "The integration's credentials.external_id."
  value       = var.external_id
}

output "s3_integration_policy_json" {
  description = "The S3 integration policy attached to the role (null when enable_s3_integration is false)."
  value       = one(data.aws_iam_policy_document.s3_integration[*].json)
}

output "bucket_policy_json" {
  description = "Cross-account bucket policy to apply to the destination bucket in its own account (null when bucket_policy_source_account_ids is empty)."
  value       = one(data.aws_iam_policy_document.bucket_policy[*].json)
}

output "prowler_app_outputs_policy_json" {
  description = "The read policy on Prowler App's output bucket attached to exporter_role_name (null when prowler_app_output_bucket_name is empty)."
  value       = one(data.aws_iam_policy_document.prowler_app_outputs[*].json)
}
