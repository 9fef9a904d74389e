"""The admin API's model (src/control_plane/api_model.json) is what tests/aws/api_model.py
writes from the pinned botocore: `iamlet admin` never drifts from AWS's IAM model."""

import json
import os
import subprocess
import sys
import unittest

from common import BIN, COMMAND_TIMEOUT_S, CP_GRPC, admin, allow, new_user, policy, run, unique

HERE = os.path.dirname(os.path.abspath(__file__))


class ApiModel(unittest.TestCase):
    def test_the_committed_model_is_the_pinned_botocores(self):
        done = subprocess.run(
            [sys.executable, os.path.join(HERE, "api_model.py"), "--check"],
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
        )
        self.assertEqual(
            done.returncode, 0,
            "src/control_plane/api_model.json differs from botocore's model: run "
            f"`target/aws-venv/bin/python tests/aws/api_model.py` ({done.stderr})",
        )

    def test_every_aws_cli_iam_command_is_known_to_iamlet_admin(self):
        # The AWS CLI's own command table, from the pinned awscli: each command's help is
        # printed offline by `iamlet admin`, with the same option names.
        import awscli.clidriver

        driver = awscli.clidriver.create_clidriver()
        iam = driver._get_command_table()["iam"]
        table = iam._get_command_table()
        checked = 0
        for name in ("create-user", "attach-role-policy", "create-open-id-connect-provider",
                     "list-entities-for-policy", "enable-mfa-device"):
            # The operation's own members; the CLI's customizations (--cli-input-json,
            # --starting-token, --page-size) are not API members.
            arguments = sorted(
                option for option, argument in table[name].arg_table.items()
                if (type(argument).__name__ == "CLIArgument" or option == "max-items")
                and not getattr(argument, "_UNDOCUMENTED", False)
            )
            done = subprocess.run([BIN, "admin", name, "help"], capture_output=True, text=True,
                                  timeout=COMMAND_TIMEOUT_S)
            self.assertEqual(done.returncode, 0, done.stderr)
            for argument in arguments:
                self.assertIn(f"--{argument} (", done.stdout, f"{name}: --{argument}")
            checked += 1
        self.assertEqual(checked, 5)


class AdminOutput(unittest.TestCase):
    """`iamlet admin`'s --output, --query and documents, against the AWS CLI's own code."""

    def raw(self, *args):
        return run([BIN, "admin", "--endpoint", CP_GRPC, "--profile", "demo-admin", *args]).stdout

    def test_text_output_is_what_the_aws_cli_prints(self):
        import io

        from awscli.text import format_text

        prefix = f"/{unique('text')}/"
        for _ in range(2):
            admin("create-user", "--user-name", unique("t"), "--path", prefix,
                  "--tags", "Key=team,Value=data")
        listed = admin("list-users", "--path-prefix", prefix)
        expected = io.StringIO()
        format_text(listed, expected)
        self.assertEqual(self.raw("list-users", "--path-prefix", prefix, "--output", "text"),
                         expected.getvalue())

    def test_table_output_is_what_the_aws_cli_draws(self):
        import io

        from awscli.formatter import TableFormatter

        class Options:
            color = "off"
            query = None

        prefix = f"/{unique('table')}/"
        for _ in range(2):
            admin("create-user", "--user-name", unique("t"), "--path", prefix,
                  "--tags", "Key=team,Value=data")
        for args, operation in ((("list-users", "--path-prefix", prefix), "ListUsers"),
                                (("get-user", "--user-name", admin("list-users", "--path-prefix", prefix)["Users"][0]["UserName"]), "GetUser")):
            expected = io.StringIO()
            TableFormatter(Options())(operation, admin(*args), expected)
            self.assertEqual(self.raw(*args, "--output", "table"), expected.getvalue())

    def test_query_picks_and_documents_print_as_objects(self):
        document = policy(allow("s3:GetObject", "arn:aws:s3:::b/*"))
        name, _, _ = new_user(document)
        got = admin("get-user-policy", "--user-name", name, "--policy-name", "inline")
        self.assertEqual(got["PolicyDocument"], json.loads(document))
        names = self.raw("--query", "Users[].UserName", "--output", "text", "list-users",
                         "--path-prefix", "/")
        self.assertIn(name, names.split())
        self.assertEqual(self.raw("get-user", "--user-name", name, "--query", "User.UserName"),
                         f'"{name}"\n')

    def aws(self, *args):
        """The pinned AWS CLI against the control plane's IAM endpoint: its stdout."""
        from common import CP_HTTP

        return run([sys.executable, "-m", "awscli", "iam", *args, "--endpoint-url", CP_HTTP,
                    "--profile", "demo-admin"]).stdout

    def test_paging_prints_and_resumes_as_the_aws_cli_does(self):
        prefix = f"/{unique('paging')}/"
        for _ in range(5):
            admin("create-user", "--user-name", unique("p"), "--path", prefix)
        # Pages of two, five users: --max-items 3 cuts the second page, and its NextToken
        # (botocore's) resumes in the middle of it, whichever tool printed it.
        for output in ("json", "text", "table"):
            args = ("list-users", "--path-prefix", prefix, "--page-size", "2", "--max-items", "3",
                    "--output", output)
            self.assertEqual(self.raw(*args), self.aws(*args), output)
        first = json.loads(self.raw("list-users", "--path-prefix", prefix, "--page-size", "2",
                                    "--max-items", "3"))
        self.assertEqual(len(first["Users"]), 3)
        token = first["NextToken"]
        for tool in (self.raw, self.aws):
            rest = json.loads(tool("list-users", "--path-prefix", prefix, "--starting-token", token,
                                   "--output", "json"))
            self.assertEqual([u["UserName"] for u in first["Users"] + rest["Users"]],
                             sorted(u["UserName"] for u in first["Users"] + rest["Users"]))
            self.assertEqual(len(rest["Users"]), 2)
            self.assertNotIn("NextToken", rest)
        # Paging by hand (a marker) is one call whose own members are printed.
        page = json.loads(self.raw("list-users", "--path-prefix", prefix, "--no-paginate",
                                   "--max-items", "2"))
        self.assertTrue(page["IsTruncated"])
        self.assertEqual(page, json.loads(self.aws("list-users", "--path-prefix", prefix,
                                                   "--no-paginate", "--max-items", "2",
                                                   "--output", "json")))
        done = run([BIN, "admin", "--endpoint", CP_GRPC, "--profile", "demo-admin", "list-users",
                    "--no-paginate", "--page-size", "2"], check=False)
        self.assertEqual(done.returncode, 255, done.stderr)
        self.assertIn("Cannot specify --no-paginate along with pagination arguments: --page-size",
                      done.stderr)

    def test_a_query_that_does_not_parse_is_refused_before_any_call(self):
        done = run([BIN, "admin", "--endpoint", "http://127.0.0.1:1", "list-users",
                    "--query", "Users[?"], check=False)
        self.assertEqual(done.returncode, 252, done.stderr)
        self.assertIn("argument --query:", done.stderr)


if __name__ == "__main__":
    unittest.main()
