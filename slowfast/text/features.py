"""Old import path of `slowfast.text.feature_file`, kept until every caller imports the new one."""

from slowfast.text.feature_file import FORMAT_VERSION, TextFeatureError, check_text_features, load_text_features, save_text_features  # noqa: F401,E501
