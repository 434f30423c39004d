from tests.agent.conftest import start_agent
from tests.chat.conftest import fake_model, start_chat_server

__all__ = ["fake_model", "start_agent", "start_chat_server"]
