*** Settings ***
Documentation       The support chat end to end with Robot Framework: what the customer sees (SeleniumLibrary,
...                 headless Chromium) and what the agent did to answer (agentotel.robot). The app runs in a
...                 process of its own and exports its sessions to a store file, which agentotel.robot reads.
...
...                 robot --outputdir results examples/support_chat/support_chat.robot
Library             SeleniumLibrary
Library             agentotel.robot    source=${OUTPUT DIR}/support-chat-sessions.db
Library             SupportChat.py
Suite Setup         Open The Support Chat
Suite Teardown      Close The Support Chat


*** Variables ***
${CHROMIUM}         /usr/bin/chromium
${CHROMEDRIVER}     /usr/bin/chromedriver


*** Test Cases ***
Billing Question Is Answered
    Go To    ${URL}
    Input Text    id:message    I was charged twice on account C-1001
    Click Button    Send
    Wait Until Page Contains    I have refunded the second payment    timeout=5s
    Agent Session Should Have Called Tool    fetch_customer_data
    Agent Session Should Have Called In Order    classify_intent    fetch_customer_data    session_complete
    Agent Session Cost Should Be Below    0.01


*** Keywords ***
Open The Support Chat
    ${url}=    Start Support Chat    store=${OUTPUT DIR}/support-chat-sessions.db
    Set Suite Variable    ${URL}    ${url}
    ${options}=    Set Variable
    ...    binary_location="${CHROMIUM}";add_argument("--headless=new");add_argument("--no-sandbox");add_argument("--disable-gpu");add_argument("--disable-dev-shm-usage")
    Open Browser    about:blank    chrome    options=${options}    service=executable_path="${CHROMEDRIVER}"

Close The Support Chat
    Close All Browsers
    Stop Support Chat
