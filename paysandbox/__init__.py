"""The payment sandbox: WeChat Pay's side of the contract, as a process of its own.

The mall reaches it only over HTTP, as it would reach WeChat Pay: it asks for a prepay
(JSAPI order), queries a transaction by its out_trade_no (主动查单) and closes unpaid ones.
A customer's wallet completes a prepay through the sandbox's own endpoint.  Every
notification owed to a mall waits in a durable outbox and is retried on WeChat's schedule
until the mall acknowledges it, across restarts of either side."""
