"""The admin API's model (src/control_plane/api_model.json) is what tests/aws/api_model.py
writes from the pinned botocore: `iamlet admin` never drifts from AWS's IAM model."""

import os
import subprocess
import sys
import unittest

from common import BIN, COMMAND_TIMEOUT_S

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


if __name__ == "__main__":
    unittest.main()
