package testutil

import (
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Output formats of Prowler, as OutputFile.Format and SizedReader take them.
const (
	FormatCSV        = "csv"
	FormatHTML       = "html"
	FormatOCSF       = "json-ocsf"
	FormatASFF       = "json-asff"
	FormatCompliance = "compliance"
)

// ProwlerVersion is the version the fixtures claim to come from.
const ProwlerVersion = "5.7.3"

// FindingsCSVHeader is Prowler's findings CSV header, `;`-separated.
const FindingsCSVHeader = "AUTH_METHOD;TIMESTAMP;ACCOUNT_UID;ACCOUNT_NAME;ACCOUNT_EMAIL;ACCOUNT_ORGANIZATION_UID;ACCOUNT_ORGANIZATION_NAME;ACCOUNT_TAGS;FINDING_UID;PROVIDER;CHECK_ID;CHECK_TITLE;CHECK_TYPE;STATUS;STATUS_EXTENDED;MUTED;SERVICE_NAME;SUBSERVICE_NAME;SEVERITY;RESOURCE_TYPE;RESOURCE_UID;RESOURCE_NAME;RESOURCE_DETAILS;RESOURCE_TAGS;PARTITION;REGION;DESCRIPTION;RISK;RELATED_URL;REMEDIATION_RECOMMENDATION_TEXT;REMEDIATION_RECOMMENDATION_URL;REMEDIATION_CODE_NATIVEIAC;REMEDIATION_CODE_TERRAFORM;REMEDIATION_CODE_CLI;REMEDIATION_CODE_OTHER;COMPLIANCE;CATEGORIES;DEPENDS_ON;RELATED_TO;NOTES;PROWLER_VERSION;ADDITIONAL_URLS;ACCOUNT_OU_UID;ACCOUNT_OU_NAME"

// ComplianceCSVHeader is the header of Prowler's compliance CSV for generic
// frameworks.
const ComplianceCSVHeader = "Provider;Description;AccountId;Region;AssessmentDate;Requirements_Id;Requirements_Description;Requirements_Attributes_Section;Requirements_Attributes_SubSection;Requirements_Attributes_SubGroup;Requirements_Attributes_Service;Requirements_Attributes_Type;Status;StatusExtended;ResourceId;CheckId;Muted;ResourceName;Framework;Name;Requirements_Attributes_Comment"

// CISComplianceCSVHeader is the header of Prowler's compliance CSV for CIS
// benchmarks (frameworks named cis_*).
const CISComplianceCSVHeader = "Provider;Description;AccountId;Region;AssessmentDate;Requirements_Id;Requirements_Description;Requirements_Attributes_Section;Requirements_Attributes_SubSection;Requirements_Attributes_Profile;Requirements_Attributes_AssessmentStatus;Requirements_Attributes_Description;Requirements_Attributes_RationaleStatement;Requirements_Attributes_ImpactStatement;Requirements_Attributes_RemediationProcedure;Requirements_Attributes_AuditProcedure;Requirements_Attributes_AdditionalInformation;Requirements_Attributes_DefaultValue;Requirements_Attributes_References;Status;StatusExtended;ResourceId;ResourceName;CheckId;Muted;Framework;Name"

// checkDef is one Prowler check, as its metadata describes it.
type checkDef struct {
	ID, Title, Service, SubService, Severity, ResourceType string
	Description, Risk, RelatedURL                          string
	RemediationText, RemediationURL, CLI, Terraform        string
	Categories                                             []string
	// Resource makes the resource name from an index; ARN is the format
	// of its uid with partition, region, account and name.
	Resource func(i int) string
	ARN      string
	// Compliance maps framework to requirement ids.
	Compliance map[string][]string
	// PassText and FailText are the status_extended templates (%s is the
	// resource name).
	PassText, FailText string
}

var checkCatalog = []checkDef{
	{
		ID: "s3_bucket_default_encryption", Title: "Check if S3 buckets have default encryption (SSE) enabled or use a bucket policy to enforce it.",
		Service: "s3", Severity: "medium", ResourceType: "AwsS3Bucket",
		Description:     "Check if S3 buckets have default encryption (SSE) enabled or use a bucket policy to enforce it.",
		Risk:            "Amazon S3 default encryption provides a way to set the default encryption behavior for an S3 bucket. This will ensure data-at-rest is encrypted.",
		RelatedURL:      "https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-encryption.html",
		RemediationText: "Ensure that S3 buckets have encryption at rest enabled.", RemediationURL: "https://aws.amazon.com/blogs/security/how-to-prevent-uploads-of-unencrypted-objects-to-amazon-s3/",
		CLI:        "aws s3api put-bucket-encryption --bucket <bucket_name> --server-side-encryption-configuration '{\"Rules\": [{\"ApplyServerSideEncryptionByDefault\": {\"SSEAlgorithm\": \"AES256\"}}]}'",
		Terraform:  "https://docs.prowler.com/checks/aws/s3-policies/s3_14-data-encrypted-at-rest#terraform",
		Categories: []string{"encryption"}, ARN: "arn:%s:s3:::%[4]s", Resource: func(i int) string { return fmt.Sprintf("company-logs-%04d", i) },
		Compliance: map[string][]string{"CIS-5.0": {"2.1.1"}, "ISO27001-2022": {"A.8.24"}, "SOC2": {"cc_6_1"}, "AWS-Foundational-Security-Best-Practices": {"S3.4"}},
		PassText:   "S3 Bucket %s has Server Side Encryption with AES256.", FailText: "Server Side Encryption is not configured for S3 Bucket %s.",
	},
	{
		ID: "s3_bucket_public_access", Title: "Ensure there are no S3 buckets open to Everyone or Any AWS user.",
		Service: "s3", Severity: "critical", ResourceType: "AwsS3Bucket",
		Description:     "Ensure there are no S3 buckets open to Everyone or Any AWS user.",
		Risk:            "Even if you enable all possible bucket ACL options available in the Amazon S3 console the ACL alone does not allow everyone to download objects from your bucket.",
		RelatedURL:      "https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html",
		RemediationText: "You can enable block public access settings only for access points, buckets and AWS accounts.", RemediationURL: "https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html",
		CLI:        "aws s3api put-public-access-block --region <REGION_NAME> --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true --bucket <BUCKET_NAME>",
		Categories: []string{"internet-exposed"}, ARN: "arn:%s:s3:::%[4]s", Resource: func(i int) string { return fmt.Sprintf("static-assets-%04d", i) },
		Compliance: map[string][]string{"CIS-5.0": {"2.1.4"}, "PCI-4.0": {"1.4.1", "7.2.1"}, "SOC2": {"cc_6_1", "cc_6_6"}},
		PassText:   "S3 Bucket %s is not public.", FailText: "S3 Bucket %s has public access due to bucket policy.",
	},
	{
		ID: "iam_root_mfa_enabled", Title: "Ensure MFA is enabled for the root account",
		Service: "iam", Severity: "critical", ResourceType: "AwsIamUser",
		Description:     "Ensure MFA is enabled for the root account",
		Risk:            "The root account is the most privileged user in an AWS account. MFA adds an extra layer of protection on top of a user name and password.",
		RelatedURL:      "https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_mfa_enable_virtual.html#enable-virt-mfa-for-root",
		RemediationText: "Using IAM console navigate to Dashboard and expand Activate MFA on your root account.", RemediationURL: "https://docs.aws.amazon.com/IAM/latest/UserGuide/id_root-user.html#id_root-user_manage_mfa",
		Categories: []string{"identity-access"}, ARN: "arn:%s:iam::%[3]s:%[4]s", Resource: func(int) string { return "root" },
		Compliance: map[string][]string{"CIS-5.0": {"1.4"}, "ISO27001-2022": {"A.5.17", "A.8.5"}, "NIST-800-53-Revision-5": {"ia_2_1", "ia_2_2"}},
		PassText:   "MFA is enabled for %s account.", FailText: "MFA is not enabled for %s account.",
	},
	{
		ID: "iam_user_accesskey_unused", Title: "Ensure unused user access keys are disabled",
		Service: "iam", Severity: "medium", ResourceType: "AwsIamUser",
		Description:     "Ensure Access Keys unused are disabled",
		Risk:            "To increase the security of your AWS account, remove IAM user credentials (that is, passwords and access keys) that are not needed.",
		RelatedURL:      "https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_finding-unused.html",
		RemediationText: "Find the credentials that they are not using and remove them.", RemediationURL: "https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_finding-unused.html",
		Categories: []string{"identity-access"}, ARN: "arn:%s:iam::%[3]s:user/%[4]s", Resource: func(i int) string { return fmt.Sprintf("svc-deployer-%03d", i%500) },
		Compliance: map[string][]string{"CIS-5.0": {"1.11"}, "SOC2": {"cc_6_2"}, "GDPR": {"article_25"}},
		PassText:   "User %s does not have unused access keys.", FailText: "User %s has not used access key 1 in the last 45 days (120 days).",
	},
	{
		ID: "ec2_instance_public_ip", Title: "Check for EC2 Instances with Public IP.",
		Service: "ec2", Severity: "medium", ResourceType: "AwsEc2Instance",
		Description:     "Check for EC2 Instances with Public IP.",
		Risk:            "Exposing an EC2 directly to internet increases the attack surface and therefore the risk of compromise.",
		RelatedURL:      "https://docs.aws.amazon.com/vpc/latest/userguide/vpc-ip-addressing.html",
		RemediationText: "Use an ALB and apply WAF ACL.", RemediationURL: "https://aws.amazon.com/blogs/aws/aws-web-application-firewall-waf-for-application-load-balancers/",
		Categories: []string{"internet-exposed"}, ARN: "arn:%s:ec2:%s:%s:instance/%s", Resource: func(i int) string { return fmt.Sprintf("i-0%015x", uint64(i)*0x9e3779b97f4a7c15>>4) },
		Compliance: map[string][]string{"PCI-4.0": {"1.3.1"}, "NIST-800-53-Revision-5": {"ac_4", "sc_7_3"}},
		PassText:   "EC2 Instance %s does not have a Public IP.", FailText: "EC2 Instance %s has a Public IP: 54.210.14.7 (ec2-54-210-14-7.compute-1.amazonaws.com).",
	},
	{
		ID: "ec2_securitygroup_allow_ingress_from_internet_to_tcp_port_22", Title: "Ensure no security groups allow ingress from 0.0.0.0/0 or ::/0 to SSH port 22.",
		Service: "ec2", SubService: "securitygroup", Severity: "high", ResourceType: "AwsEc2SecurityGroup",
		Description:     "Ensure no security groups allow ingress from 0.0.0.0/0 or ::/0 to SSH port 22.",
		Risk:            "If Security groups are not properly configured the attack surface is increased.",
		RelatedURL:      "https://docs.aws.amazon.com/vpc/latest/userguide/vpc-security-groups.html",
		RemediationText: "Use a Zero Trust approach. Narrow ingress traffic as much as possible.", RemediationURL: "https://docs.aws.amazon.com/vpc/latest/userguide/security-group-rules.html",
		CLI:        "aws ec2 revoke-security-group-ingress --group-id <sg-id> --protocol tcp --port 22 --cidr 0.0.0.0/0",
		Categories: []string{"internet-exposed"}, ARN: "arn:%s:ec2:%s:%s:security-group/%s", Resource: func(i int) string { return fmt.Sprintf("sg-0%016x", uint64(i)*0x2545f4914f6cdd1d>>4) },
		Compliance: map[string][]string{"CIS-5.0": {"5.2"}, "PCI-4.0": {"1.3.1", "1.3.2"}, "MITRE-ATTACK": {"T1190", "T1021"}},
		PassText:   "Security group %s does not have SSH port 22 open to the Internet.", FailText: "Security group %s has SSH port 22 open to the Internet.",
	},
	{
		ID: "cloudtrail_multi_region_enabled", Title: "Ensure CloudTrail is enabled in all regions",
		Service: "cloudtrail", Severity: "high", ResourceType: "AwsCloudTrailTrail",
		Description:     "Ensure CloudTrail is enabled in all regions",
		Risk:            "AWS CloudTrail is a web service that records AWS API calls for your account and delivers log files to you.",
		RelatedURL:      "https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-concepts.html#cloudtrail-concepts-management-events",
		RemediationText: "Ensure Logging is set to ON on all regions (even if they are not being used at the moment.", RemediationURL: "https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-create-and-update-a-trail.html",
		CLI:        "aws cloudtrail create-trail --name <trail_name> --bucket-name <s3_bucket_for_cloudtrail> --is-multi-region-trail aws cloudtrail update-trail --name <trail_name> --is-multi-region-trail",
		Categories: []string{"forensics-ready", "logging"}, ARN: "arn:%s:cloudtrail:%s:%s:trail/%s", Resource: func(i int) string { return fmt.Sprintf("org-trail-%d", i%3) },
		Compliance: map[string][]string{"CIS-5.0": {"3.1"}, "HIPAA": {"164_308_a_1_ii_d", "164_312_b"}, "SOC2": {"cc_7_2"}},
		PassText:   "Trail %s is multiregion and it is logging.", FailText: "No CloudTrail trails enabled with logging were found; %s is not logging.",
	},
	{
		ID: "rds_instance_storage_encrypted", Title: "Check if RDS instances storage is encrypted.",
		Service: "rds", Severity: "medium", ResourceType: "AwsRdsDbInstance",
		Description:     "Check if RDS instances storage is encrypted.",
		Risk:            "If not enabled sensitive information at rest is not protected.",
		RelatedURL:      "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Overview.Encryption.html",
		RemediationText: "Enable Encryption. Use a CMK where possible.", RemediationURL: "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Overview.Encryption.html",
		Categories: []string{"encryption"}, ARN: "arn:%s:rds:%s:%s:db:%s", Resource: func(i int) string { return fmt.Sprintf("orders-db-%03d", i%1000) },
		Compliance: map[string][]string{"ISO27001-2022": {"A.8.24"}, "HIPAA": {"164_312_a_2_iv"}, "GDPR": {"article_32"}},
		PassText:   "RDS Instance %s is encrypted.", FailText: "RDS Instance %s is not encrypted.",
	},
	{
		ID: "kms_cmk_rotation_enabled", Title: "Ensure rotation for customer created KMS CMKs is enabled.",
		Service: "kms", Severity: "medium", ResourceType: "AwsKmsKey",
		Description:     "Ensure rotation for customer created KMS CMKs is enabled.",
		Risk:            "Cryptographic best practices discourage extensive reuse of encryption keys.",
		RelatedURL:      "https://docs.aws.amazon.com/kms/latest/developerguide/rotate-keys.html",
		RemediationText: "For every KMS Customer Master Keys (CMKs), ensure that Rotate this key every year is enabled.", RemediationURL: "https://docs.aws.amazon.com/kms/latest/developerguide/rotate-keys.html",
		CLI:        "aws kms enable-key-rotation --key-id <key_id>",
		Categories: []string{"encryption"}, ARN: "arn:%s:kms:%s:%s:key/%s", Resource: func(i int) string { return fmt.Sprintf("%08x-1f2e-4d3c-9b8a-%012x", i, uint64(i)*7919) },
		Compliance: map[string][]string{"CIS-5.0": {"3.6"}, "PCI-4.0": {"3.7.4"}},
		PassText:   "KMS key %s has automatic rotation enabled.", FailText: "KMS key %s has automatic rotation disabled.",
	},
	{
		ID: "guardduty_is_enabled", Title: "Check if GuardDuty is enabled",
		Service: "guardduty", Severity: "medium", ResourceType: "AwsGuardDutyDetector",
		Description:     "Check if GuardDuty is enabled",
		Risk:            "Amazon GuardDuty is a continuous security monitoring service that analyzes and processes several datasources.",
		RelatedURL:      "https://docs.aws.amazon.com/guardduty/latest/ug/guardduty_settingup.html",
		RemediationText: "Enable GuardDuty and analyze its findings.", RemediationURL: "https://aws.amazon.com/guardduty/",
		CLI:        "aws guardduty create-detector --enable",
		Categories: []string{"forensics-ready"}, ARN: "arn:%s:guardduty:%s:%s:detector/%s", Resource: func(i int) string { return fmt.Sprintf("%032x", uint64(i)*0x51afd7ed558ccd) },
		Compliance: map[string][]string{"AWS-Foundational-Security-Best-Practices": {"GuardDuty.1"}, "MITRE-ATTACK": {"T1078"}},
		PassText:   "GuardDuty detector %s enabled.", FailText: "GuardDuty detector %s not enabled.",
	},
	{
		ID: "vpc_flow_logs_enabled", Title: "Ensure VPC Flow Logging is Enabled in all VPCs.",
		Service: "vpc", Severity: "medium", ResourceType: "AwsEc2Vpc",
		Description:     "Ensure VPC Flow Logging is Enabled in all VPCs.",
		Risk:            "VPC Flow Logs provide visibility into network traffic that traverses the VPC and can be used to detect anomalous traffic or insight during security workflows.",
		RelatedURL:      "https://docs.aws.amazon.com/vpc/latest/userguide/flow-logs.html",
		RemediationText: "It is recommended that VPC Flow Logs be enabled for packet Rejects for VPCs.", RemediationURL: "https://docs.aws.amazon.com/vpc/latest/userguide/flow-logs.html",
		Categories: []string{"forensics-ready", "logging"}, ARN: "arn:%s:ec2:%s:%s:vpc/%s", Resource: func(i int) string { return fmt.Sprintf("vpc-0%016x", uint64(i)*0x27d4eb2f165667c5>>4) },
		Compliance: map[string][]string{"CIS-5.0": {"3.7"}, "NIST-800-53-Revision-5": {"au_12", "si_4_2"}},
		PassText:   "VPC %s Flow logs are enabled.", FailText: "VPC %s Flow logs are disabled.",
	},
	{
		ID: "awslambda_function_no_secrets_in_variables", Title: "Find secrets in Lambda functions variables.",
		Service: "awslambda", Severity: "critical", ResourceType: "AwsLambdaFunction",
		Description:     "Find secrets in Lambda functions variables.",
		Risk:            "The use of a hard-coded password increases the possibility of password guessing.",
		RelatedURL:      "https://docs.aws.amazon.com/secretsmanager/latest/userguide/lambda-functions.html",
		RemediationText: "Use Secrets Manager to securely provide database credentials to Lambda functions.", RemediationURL: "https://docs.aws.amazon.com/secretsmanager/latest/userguide/lambda-functions.html",
		Categories: []string{"secrets"}, ARN: "arn:%s:lambda:%s:%s:function:%s", Resource: func(i int) string { return fmt.Sprintf("ingest-handler-%03d", i%1000) },
		Compliance: map[string][]string{"SOC2": {"cc_6_1"}, "GDPR": {"article_32"}},
		PassText:   "No secrets found in Lambda function %s variables.", FailText: "Potential secret found in Lambda function %s variables -> Secret Keyword in variable DB_PASSWORD.",
	},
}

var fixtureRegions = []string{"us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2", "sa-east-1"}

// finding is one generated Prowler finding, shared by every output format so
// that the files of one scan describe the same findings.
type finding struct {
	check          *checkDef
	index          int
	account        fixtureAccount
	region         string
	status         string // PASS, FAIL, MANUAL
	statusExtended string
	muted          bool
	resourceName   string
	resourceUID    string
	resourceTags   string
	time           time.Time
	uid            string
}

type fixtureAccount struct {
	UID, Name, Email, OrgUID, OrgName, OUUID, OUName, Tags string
}

// scanFixture is the deterministic state of one generated scan.
type scanFixture struct {
	rng     *rand.Rand
	account fixtureAccount
	start   time.Time
}

func newScanFixture(seed int64, accountUID string) *scanFixture {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x70726f776c6572))
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).
		Add(time.Duration(rng.IntN(365*24*3600)) * time.Second).
		Add(time.Duration(rng.IntN(1_000_000)) * time.Microsecond)
	org := fmt.Sprintf("o-%010x", rng.Uint64()&0xffffffffff)
	ou := fmt.Sprintf("ou-%04x-%08x", rng.IntN(0x10000), rng.Uint32())
	return &scanFixture{
		rng:   rng,
		start: start,
		account: fixtureAccount{
			UID:     accountUID,
			Name:    "workload-" + lastN(accountUID, 4),
			Email:   "aws+" + lastN(accountUID, 4) + "@example.com",
			OrgUID:  org,
			OrgName: "example-org",
			OUUID:   ou,
			OUName:  "Workloads/Production",
			Tags:    "environment=production | owner=platform-team",
		},
	}
}

func lastN(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// next makes finding i of the scan.
func (sf *scanFixture) next(i int) finding {
	return sf.nextFrom(i, nil)
}

// nextFrom makes finding i of a check from pool (nil: any check).
func (sf *scanFixture) nextFrom(i int, pool []*checkDef) finding {
	r := sf.rng
	var c *checkDef
	if len(pool) > 0 {
		c = pool[r.IntN(len(pool))]
	} else {
		c = &checkCatalog[r.IntN(len(checkCatalog))]
	}
	region := fixtureRegions[r.IntN(len(fixtureRegions))]
	if c.Service == "iam" {
		region = "us-east-1" // global service
	}
	status := "PASS"
	switch p := r.IntN(100); {
	case p < 38:
		status = "FAIL"
	case p < 41:
		status = "MANUAL"
	}
	name := c.Resource(i + 1)
	uid := fmt.Sprintf(c.ARN, "aws", region, sf.account.UID, name)
	text := c.PassText
	if status != "PASS" {
		text = c.FailText
	}
	tags := ""
	if r.IntN(3) > 0 {
		tags = fmt.Sprintf("Name=%s | CostCenter=cc-%03d", name, r.IntN(1000))
	}
	return finding{
		check:          c,
		index:          i,
		account:        sf.account,
		region:         region,
		status:         status,
		statusExtended: fmt.Sprintf(text, name),
		muted:          r.IntN(50) == 0,
		resourceName:   name,
		resourceUID:    uid,
		resourceTags:   tags,
		time:           sf.start.Add(time.Duration(i) * 37 * time.Millisecond),
		uid:            fmt.Sprintf("prowler-aws-%s-%s-%s-%s", c.ID, sf.account.UID, region, name),
	}
}

// complianceString renders a check's compliance map as Prowler's CSV does:
// "CIS-5.0: 2.1.1 | SOC2: cc_6_1, cc_6_6".
func (c *checkDef) complianceString() string {
	keys := slices.Sorted(maps.Keys(c.Compliance))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+": "+strings.Join(c.Compliance[k], ", "))
	}
	return strings.Join(parts, " | ")
}

// subSeed derives a seed for one part of a scan (a framework's rows) so
// that parts do not change when others are added.
func subSeed(seed int64, part string) int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s", seed, part)
	return int64(h.Sum64())
}

var unsafeUIDChars = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// ProwlerFileName is the name Prowler App gives an output file:
// prowler-output-{uid}-{YYYYmmddHHMMSS}{suffix}, compliance files under
// compliance/ with _{framework}.csv. Characters of the provider uid outside
// [A-Za-z0-9_-] become '-'.
func ProwlerFileName(providerUID string, start time.Time, f OutputFile) string {
	base := "prowler-output-" + unsafeUIDChars.ReplaceAllString(providerUID, "-") + "-" + start.UTC().Format("20060102150405")
	switch f.Format {
	case FormatCSV:
		return base + ".csv"
	case FormatHTML:
		return base + ".html"
	case FormatOCSF:
		return base + ".ocsf.json"
	case FormatASFF:
		return base + ".asff.json"
	case FormatCompliance:
		return "compliance/" + base + "_" + f.Framework + ".csv"
	}
	return base
}
