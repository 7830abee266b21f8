# Regenerates the golden EKS token of shared/src/kube/token.rs with botocore (what `aws eks get-token`
# uses), for fixed credentials, cluster and time. Run: .venv/bin/python shared/tests/golden/eks_token.py
import base64, datetime
from unittest import mock
import botocore.session
from botocore.signers import RequestSigner
sess = botocore.session.get_session()
sess.set_credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token-example")
client = sess.create_client("sts", region_name="us-east-1", endpoint_url="https://sts.us-east-1.amazonaws.com")
def add_header(request, **kwargs):
    request.headers["x-k8s-aws-id"] = "prod-east"
client.meta.events.register("before-sign.sts.GetCallerIdentity", add_header)
fixed = datetime.datetime(2026, 11, 23, 6, 0, 0)
with mock.patch("botocore.auth.get_current_datetime", return_value=fixed):
    url = client.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=60, HttpMethod="GET")
print(url)
print("k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("="))
